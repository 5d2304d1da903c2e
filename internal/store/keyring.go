package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// KeyInfo is a stored key without its secret: its public id and grant.
type KeyInfo struct {
	ID string
	KeyRecord
}

// keyIDBytes is how many bytes of a key's SHA-256 its public id shows: 64
// bits, enough to name one key among a workspace's few, nothing towards
// guessing a 160-bit secret.
const keyIDBytes = 8

// KeyID is the public id of a key: "key_" and the first bytes of its
// SHA-256 in hex. It is how keys are listed and revoked.
func KeyID(key string) string {
	h := sha256.Sum256([]byte(key))
	return "key_" + hex.EncodeToString(h[:keyIDBytes])
}

func keyIDOf(storeKey []byte) string {
	return "key_" + hex.EncodeToString(storeKey[1:1+keyIDBytes])
}

// ListKeys lists the keys granting a role on workspace ws (the admin keys
// are ws 0), oldest first.
func ListKeys(r pebble.Reader, ws uint32) ([]KeyInfo, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{tagKey}, UpperBound: []byte{tagKey + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []KeyInfo
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 1+sha256.Size {
			return nil, fmt.Errorf("key entry %x: %w", it.Key(), ErrCorruption)
		}
		rec, err := decodeKeyRecord(it.Value())
		if err != nil {
			return nil, fmt.Errorf("key entry %x: %w", it.Key()[:1+keyIDBytes], err)
		}
		if rec.Workspace == ws {
			out = append(out, KeyInfo{ID: keyIDOf(it.Key()), KeyRecord: rec})
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b KeyInfo) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return out, nil
}

// FindKey finds a key by its public id: the store key to delete it by and
// what it grants. ok is false when no key has that id.
func FindKey(r pebble.Reader, id string) (storeKey []byte, rec KeyRecord, ok bool, err error) {
	hexID, found := bytes.CutPrefix([]byte(id), []byte("key_"))
	if !found || len(hexID) != 2*keyIDBytes {
		return nil, KeyRecord{}, false, nil
	}
	prefix := make([]byte, 1+keyIDBytes)
	prefix[0] = tagKey
	if _, err := hex.Decode(prefix[1:], hexID); err != nil {
		return nil, KeyRecord{}, false, nil
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, KeyRecord{}, false, err
	}
	defer it.Close()
	if !it.First() {
		return nil, KeyRecord{}, false, it.Error()
	}
	rec, err = decodeKeyRecord(it.Value())
	if err != nil {
		return nil, KeyRecord{}, false, fmt.Errorf("key %s: %w", id, err)
	}
	return bytes.Clone(it.Key()), rec, true, nil
}

// adminGeneratedKey records that an admin key was generated once (and
// printed), so that a restart without COHORT_ADMIN_KEY makes no other.
var adminGeneratedKey = []byte{tagMeta, 'a', 'd', 'm', 'i', 'n', '-', 'g', 'e', 'n'}

// legacyAdminMarker is how stores before the key lifecycle recorded the
// same thing: as a key, which made its name a working admin key.
const legacyAdminMarker = "cohort-admin-key-generated"

// AdminKeyGenerated reports whether an admin key was generated before. A
// store that recorded it the old way, as a key named legacyAdminMarker, is
// moved to the meta record and that key is deleted.
func (s *Store) AdminKeyGenerated() (bool, error) {
	if ok, err := Exists(s.db, adminGeneratedKey); err != nil || ok {
		return ok, err
	}
	ok, err := Exists(s.db, HashKey(legacyAdminMarker))
	if err != nil || !ok {
		return false, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(adminGeneratedKey, nil, nil); err != nil {
		return false, err
	}
	if err := b.Delete(HashKey(legacyAdminMarker), nil); err != nil {
		return false, err
	}
	return true, b.Commit(pebble.Sync)
}

// SetAdminKeyGenerated records that an admin key was generated.
func (s *Store) SetAdminKeyGenerated() error {
	return s.db.Set(adminGeneratedKey, nil, pebble.Sync)
}
