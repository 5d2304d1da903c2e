package condition

import (
	"errors"
	"fmt"
)

// ErrInvalidCondition is matched by errors.Is for every *Error: any
// problem with a condition's text, shape, operands or segment references.
var ErrInvalidCondition = errors.New("invalid condition")

// Error is a problem with one part of a condition. Path is the RFC 6901
// JSON pointer of the offending part inside the condition document ("" is
// the whole condition). When a required key is missing, Path points at
// where that key belongs (e.g. "/and/0/value").
type Error struct {
	Path string
	Msg  string
}

// Error returns "msg (at /and/2/op)", or "msg (at root)" for the root.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg + " (at root)"
	}
	return e.Msg + " (at " + e.Path + ")"
}

// Is makes errors.Is(err, ErrInvalidCondition) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalidCondition }

func errf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}
