// Package dns stands in for Akamai's Edge DNS API, which this build does not have: every call answers
// edgegrid.ErrUnavailable.
package dns

import (
	"context"
	"fmt"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/edgegrid"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/session"
)

// Error is an API error with its HTTP status.
type Error struct {
	StatusCode int
}

func (e *Error) Error() string { return fmt.Sprintf("akamai edge dns: HTTP %d", e.StatusCode) }

// RecordBody is a record set to write.
type RecordBody struct {
	Name       string
	RecordType string
	TTL        *int
	Active     bool
	Target     []string
}

// GetRecordResponse is a record set read.
type GetRecordResponse struct {
	Name       string
	RecordType string
	TTL        int
	Active     bool
	Target     []string
}

// GetRecordRequest names a record set to read.
type GetRecordRequest struct {
	Zone       string
	Name       string
	RecordType string
}

// CreateRecordRequest is a record set to create.
type CreateRecordRequest struct {
	Record  *RecordBody
	Zone    string
	RecLock []bool
}

// UpdateRecordRequest is a record set to replace.
type UpdateRecordRequest struct {
	Record  *RecordBody
	Zone    string
	RecLock []bool
}

// DeleteRecordRequest names a record set to delete.
type DeleteRecordRequest struct {
	Zone       string
	Name       string
	RecordType string
	RecLock    []bool
}

// DNS is the Edge DNS API.
type DNS interface {
	GetRecord(context.Context, GetRecordRequest) (*GetRecordResponse, error)
	CreateRecord(context.Context, CreateRecordRequest) error
	UpdateRecord(context.Context, UpdateRecordRequest) error
	DeleteRecord(context.Context, DeleteRecordRequest) error
}

// Client answers edgegrid.ErrUnavailable to every call.
func Client(session.Session) DNS { return unavailable{} }

type unavailable struct{}

func (unavailable) GetRecord(context.Context, GetRecordRequest) (*GetRecordResponse, error) {
	return nil, edgegrid.ErrUnavailable
}

func (unavailable) CreateRecord(context.Context, CreateRecordRequest) error {
	return edgegrid.ErrUnavailable
}

func (unavailable) UpdateRecord(context.Context, UpdateRecordRequest) error {
	return edgegrid.ErrUnavailable
}

func (unavailable) DeleteRecord(context.Context, DeleteRecordRequest) error {
	return edgegrid.ErrUnavailable
}
