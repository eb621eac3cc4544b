// Package edgegrid stands in for Akamai's EdgeGrid configuration, which this build does not have.
package edgegrid

import "errors"

// ErrUnavailable is every answer of this stand-in.
var ErrUnavailable = errors.New("akamai edgegrid: not in this build (the Go module proxy serves no version of it)")

// Config holds what its users set; nothing reads it.
type Config struct {
	MaxBody    int
	AccountKey string
}

// Option would set a Config field.
type Option func(*Config) error

// New answers ErrUnavailable.
func New(...Option) (*Config, error) { return nil, ErrUnavailable }

// WithEnv is an Option that does nothing.
func WithEnv(bool) Option { return func(*Config) error { return nil } }

// WithFile is an Option that does nothing.
func WithFile(string) Option { return func(*Config) error { return nil } }

// WithSection is an Option that does nothing.
func WithSection(string) Option { return func(*Config) error { return nil } }

// Validate answers ErrUnavailable: no configuration is usable.
func (*Config) Validate() error { return ErrUnavailable }
