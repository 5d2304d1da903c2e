package message

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
)

func gz(t testing.TB, parts ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range parts { // one gzip member per part
		w := gzip.NewWriter(&buf)
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestGunzip(t *testing.T) {
	body := `{"batch":[{"type":"track","userId":"u","event":"E"}]}`
	valid := gz(t, body)
	corrupt := append([]byte(nil), valid...)
	corrupt[len(corrupt)-5] ^= 0xff // CRC-32 of the trailer

	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want string // decompressed output when err is nil
		is   error
		msg  string
	}{
		{name: "round trip", in: valid, max: 1000, want: body},
		{name: "multi-member", in: gz(t, `{"batch":`, `[]}`), max: 1000, want: `{"batch":[]}`},
		{name: "exactly at max", in: valid, max: len(body), want: body},
		{name: "one over max", in: valid, max: len(body) - 1, is: ErrTooLarge,
			msg: "gunzipped body is over the 52-byte limit: request too large"},
		{name: "default max", in: gz(t, strings.Repeat("a", 512000)), max: 0, want: strings.Repeat("a", 512000)},
		{name: "default max exceeded", in: gz(t, strings.Repeat("a", 512001)), max: 0, is: ErrTooLarge,
			msg: "gunzipped body is over the 512000-byte limit: request too large"},
		{name: "not gzip", in: []byte(body), max: 1000, is: ErrMalformed,
			msg: "body is not valid gzip: gzip: invalid header: malformed request"},
		{name: "empty", in: nil, max: 1000, is: ErrMalformed,
			msg: "body is not valid gzip: EOF: malformed request"},
		{name: "truncated", in: valid[:len(valid)-4], max: 1000, is: ErrMalformed,
			msg: "body is not valid gzip: unexpected EOF: malformed request"},
		{name: "bad checksum", in: corrupt, max: 1000, is: ErrMalformed,
			msg: "body is not valid gzip: gzip: invalid checksum: malformed request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Gunzip(bytes.NewReader(tc.in), tc.max)
			if tc.is == nil {
				if err != nil || string(out) != tc.want {
					t.Fatalf("Gunzip = %d bytes, %v", len(out), err)
				}
				return
			}
			if out != nil || !errors.Is(err, tc.is) || err.Error() != tc.msg {
				t.Fatalf("Gunzip = %d bytes, %v; want %q", len(out), err, tc.msg)
			}
		})
	}
}

// countingReader counts the compressed bytes Gunzip consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestGunzipBomb checks that a small stream expanding to far more than the
// limit is refused after reading little of it.
func TestGunzipBomb(t *testing.T) {
	member := gz(t, string(make([]byte, 1<<20))) // 1 MB of zeros in ~1 KB
	var buf bytes.Buffer
	for range 256 { // 256 MB in all
		buf.Write(member)
	}
	cr := &countingReader{r: bytes.NewReader(buf.Bytes())}
	_, err := Gunzip(cr, 64<<10)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if cr.n > buf.Len()/10 {
		t.Fatalf("read %d of %d compressed bytes", cr.n, buf.Len())
	}
}

// TestDecodeGzipped decodes a gzip-encoded batch end to end.
func TestDecodeGzipped(t *testing.T) {
	body := `{"batch":[{"type":"identify","userId":"u","traits":{"a":1}},{"type":"track","anonymousId":"x","event":"E"}],"writeKey":"k"}`
	raw, err := Gunzip(bytes.NewReader(gz(t, body)), DefaultLimits().MaxBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	req, err := Decode("batch", raw, recv(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if req.WriteKey != "k" || len(req.Items) != 2 || req.Items[0].Msg == nil || req.Items[1].Msg.Event != "E" {
		t.Fatalf("req = %+v", req)
	}
}
