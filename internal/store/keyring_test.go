package store

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestKeyring(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	b := s.DB().NewBatch()
	PutKey(b, "write-1", KeyRecord{Role: RoleWrite, Workspace: 1, CreatedAt: at})
	PutKey(b, "api-1", KeyRecord{Role: RoleAPI, Workspace: 1, CreatedAt: at.Add(time.Hour)})
	PutKey(b, "api-2", KeyRecord{Role: RoleAPI, Workspace: 2, CreatedAt: at})
	// A record from before creation times: 5 bytes.
	b.Set(HashKey("old-api-1"), []byte{byte(RoleAPI), 0, 0, 0, 1}, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}

	keys, err := ListKeys(s.DB(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []KeyInfo{
		{KeyID("old-api-1"), KeyRecord{Role: RoleAPI, Workspace: 1}},
		{KeyID("write-1"), KeyRecord{Role: RoleWrite, Workspace: 1, CreatedAt: at}},
		{KeyID("api-1"), KeyRecord{Role: RoleAPI, Workspace: 1, CreatedAt: at.Add(time.Hour)}},
	}
	if len(keys) != len(want) {
		t.Fatalf("ListKeys(1) = %v, want %v", keys, want)
	}
	for i := range want {
		if keys[i].ID != want[i].ID || keys[i].Role != want[i].Role || !keys[i].CreatedAt.Equal(want[i].CreatedAt) {
			t.Errorf("key %d = %+v, want %+v", i, keys[i], want[i])
		}
	}

	sk, rec, ok, err := FindKey(s.DB(), KeyID("api-1"))
	if err != nil || !ok || rec.Workspace != 1 || string(sk) != string(HashKey("api-1")) {
		t.Fatalf("FindKey(api-1) = %x %+v %v %v", sk, rec, ok, err)
	}
	for _, bad := range []string{"", "key_", "key_zz00000000000000", "key_00", KeyID("nope"), "api-1"} {
		if _, _, ok, err := FindKey(s.DB(), bad); ok || err != nil {
			t.Errorf("FindKey(%q) = %v, %v; want not found", bad, ok, err)
		}
	}

	// A corrupt record is an error, not a panic.
	s.DB().Set(HashKey("bad"), []byte{byte(RoleAPI), 0, 0}, pebble.Sync)
	if _, err := ListKeys(s.DB(), 1); err == nil {
		t.Error("ListKeys over a 3-byte record: no error")
	}
}

// TestAdminMarkerMigration: the old marker, a key that worked as an admin
// key, is replaced by a meta record at the first look.
func TestAdminMarkerMigration(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.AdminKeyGenerated(); ok || err != nil {
		t.Fatalf("new store: %v %v", ok, err)
	}
	s.DB().Set(HashKey(legacyAdminMarker), encodeKeyRecord(KeyRecord{Role: RoleAdmin}), pebble.Sync)
	if ok, err := s.AdminKeyGenerated(); !ok || err != nil {
		t.Fatalf("legacy marker: %v %v", ok, err)
	}
	if _, ok, _ := s.LookupKey(legacyAdminMarker); ok {
		t.Error("the legacy marker still works as a key")
	}
	if ok, err := s.AdminKeyGenerated(); !ok || err != nil {
		t.Errorf("after migration: %v %v", ok, err)
	}
}
