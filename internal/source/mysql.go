package source

import (
	"context"
	"errors"
)

type mysqlSource struct{ s *src }

func newMySQL(s *src) (*mysqlSource, error) {
	return nil, errors.New("mysql sources are not implemented yet")
}

func (m *mysqlSource) run(ctx context.Context) error { return nil }
func (m *mysqlSource) position() any                 { return nil }
