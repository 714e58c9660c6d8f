package breaker

import (
	"errors"
	"fmt"
	"time"
)

// Settings are the circuit_breaker config. Zero values mean the defaults.
type Settings struct {
	// FailureThreshold consecutive failures open the breaker. Default 5.
	FailureThreshold int
	// FailureRatio of failed calls over Window opens it, once at least
	// MinCalls calls were seen. 0 (the default, as in the plugin config)
	// turns the ratio rule off.
	FailureRatio float64
	// MinCalls before FailureRatio applies. Default 10.
	MinCalls int
	// Window for FailureRatio (counted in 10 buckets). Default 10s.
	Window time.Duration
	// OpenTimeout is how long the first trip stays open; each further trip
	// without a long enough closed spell doubles it. Default 30s.
	OpenTimeout time.Duration
	// MaxOpenTimeout caps that growth; a breaker closed for this long forgets
	// its trips. Default 8×OpenTimeout.
	MaxOpenTimeout time.Duration
	// HalfOpenMaxCalls probes are let through per half-open period,
	// cluster-wide. Default 1.
	HalfOpenMaxCalls int
	// ProbeTimeout is how long a half-open period waits for the outcome of
	// its probes before granting a fresh budget (a probe's outcome can be
	// lost). Default 60s, Kong's default upstream read timeout.
	ProbeTimeout time.Duration
	// FailureStatuses are upstream statuses counted as failures.
	// Nil means 500–599; an empty non-nil list counts only connection
	// errors and timeouts.
	FailureStatuses []int
}

// ErrInvalidSettings reports settings that cannot work.
var ErrInvalidSettings = errors.New("breaker: invalid settings")

func (s *Settings) defaults() error {
	if s.FailureThreshold == 0 {
		s.FailureThreshold = 5
	}
	if s.MinCalls == 0 {
		s.MinCalls = 10
	}
	if s.Window == 0 {
		s.Window = 10 * time.Second
	}
	if s.OpenTimeout == 0 {
		s.OpenTimeout = 30 * time.Second
	}
	if s.MaxOpenTimeout == 0 {
		s.MaxOpenTimeout = 8 * s.OpenTimeout
	}
	if s.ProbeTimeout == 0 {
		s.ProbeTimeout = 60 * time.Second
	}
	if s.HalfOpenMaxCalls == 0 {
		s.HalfOpenMaxCalls = 1
	}
	switch {
	case s.FailureThreshold < 0, s.FailureRatio < 0, s.FailureRatio > 1, s.MinCalls < 0,
		s.Window < buckets*time.Microsecond, s.OpenTimeout < time.Millisecond,
		s.MaxOpenTimeout < s.OpenTimeout, s.HalfOpenMaxCalls < 0, s.ProbeTimeout < 0:
		return fmt.Errorf("%w: %+v", ErrInvalidSettings, *s)
	}
	return nil
}

// Outcome is what a call to a backend instance came to.
type Outcome uint8

const (
	Success Outcome = iota
	Failure
	// Ignored outcomes count neither way (for example a request the client
	// cancelled).
	Ignored
)

// Classify turns what the log phase knows about a try into an Outcome:
// status is the upstream status (0 when none came back) and failed is true
// for a connection error or timeout (in kong.log.serialize's tries[], a try
// with no code / state "failed").
func (s *Settings) Classify(status int, failed bool) Outcome {
	if failed || status == 0 {
		return Failure
	}
	if s.FailureStatuses == nil {
		if status >= 500 && status <= 599 {
			return Failure
		}
		return Success
	}
	for _, f := range s.FailureStatuses {
		if f == status {
			return Failure
		}
	}
	return Success
}

// openFor is the open period of the n-th consecutive trip (n ≥ 1).
func (s *Settings) openFor(trips int) time.Duration {
	d := s.OpenTimeout
	for i := 1; i < trips && d < s.MaxOpenTimeout; i++ {
		d *= 2
	}
	return min(d, s.MaxOpenTimeout)
}
