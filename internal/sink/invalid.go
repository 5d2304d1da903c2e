package sink

import (
	"errors"
	"fmt"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
)

// InvalidError is a sink configuration the server refuses, with the JSON
// pointer (RFC 6901) of the offending field of the configuration.
type InvalidError struct {
	Path string // e.g. "/segments/0"
	Msg  string
}

func (e *InvalidError) Error() string { return e.Msg + ": " + ErrInvalid.Error() }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(path, format string, args ...any) error {
	return &InvalidError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// checkSegments refuses a sink that names a segment the workspace does not
// have: its changes would never come, and the typo would go unnoticed.
func (m *Manager) checkSegments(ws *ingest.Workspace, ids []string) error {
	for i, id := range ids {
		if _, err := m.seg.Get(ws, id); errors.Is(err, segment.ErrNotFound) {
			return invalid(fmt.Sprintf("/segments/%d", i), "segment %q does not exist in this workspace", id)
		} else if err != nil {
			return err
		}
	}
	return nil
}
