// Package session stands in for Akamai's API session, which this build does not have.
package session

import "github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/edgegrid"

// Session is what a client is made from.
type Session interface{}

// Option would configure a Session.
type Option func() error

// WithSigner is an Option that does nothing.
func WithSigner(any) Option { return func() error { return nil } }

// New answers edgegrid.ErrUnavailable.
func New(...Option) (Session, error) { return nil, edgegrid.ErrUnavailable }
