package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The pending journal closes the one gap of the two-step write that readers
// could not see: records written, index step lost (Redis or the writer died
// in between). Such a route would be invisible to /routes, /v1 and Kong yet
// refuse a new registration with 409. So a write that may add an index entry
// first notes "service\x00token" in the journal (on the index slot), and its
// index step removes that note. Every crash point then leaves something a
// reader repairs:
//
//	before the note          nothing was written
//	note, no records         the repair finds no records: nothing to index
//	records, no index step   the repair indexes the records
//	index step done          the note is gone
//
// Readers of the indexes look at the journal in the same round trip as their
// read and, when it is not empty, re-apply each noted service's state (the
// epoch rule keeps that safe against concurrent writers) before reading
// again. A note younger than pendingGrace may belong to a write still in
// flight, so it is repaired but kept; an older one is repaired one last time
// and removed.
const (
	pendingGrace = 2 * time.Minute
	pendingBatch = 100 // notes repaired per read; a backlog drains over reads
)

// journal notes a write of service before it starts.
func (s *Store) journal(ctx context.Context, op, service string) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	token := service + "\x00" + hex.EncodeToString(b[:])
	err := s.rdb.ZAdd(ctx, s.keys.index("pending"), redis.Z{Score: float64(s.now().UnixMilli()), Member: token}).Err()
	if err != nil {
		return "", unavailable(op, err)
	}
	return token, nil
}

// dropToken removes the note of a write that changed nothing. Best effort: a
// note left behind is repaired (a no-op) and aged out by readers.
func (s *Store) dropToken(ctx context.Context, token string) {
	_ = s.rdb.ZRem(ctx, s.keys.index("pending"), token).Err()
}

// readIndex runs read (commands on the index slot) pipelined with a look at
// the journal. When writes are pending it repairs them and, if that changed
// an index, runs read again: the caller sees every write whose records exist.
func (s *Store) readIndex(ctx context.Context, op string, read func(p redis.Pipeliner)) error {
	for attempt := 0; ; attempt++ {
		var pending *redis.ZSliceCmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			pending = p.ZRangeWithScores(ctx, s.keys.index("pending"), 0, pendingBatch-1)
			read(p)
			return nil
		})
		if err != nil {
			return unavailable(op, err)
		}
		if len(pending.Val()) == 0 || attempt > 0 {
			return nil
		}
		changed, err := s.repairPending(ctx, pending.Val())
		if err != nil || !changed {
			return err
		}
	}
}

// repairPending re-applies the state of every noted service to the indexes
// and removes the notes older than pendingGrace.
func (s *Store) repairPending(ctx context.Context, notes []redis.Z) (changed bool, err error) {
	done := map[string]bool{}
	var old []any
	cutoff := float64(s.now().Add(-pendingGrace).UnixMilli())
	for _, n := range notes {
		member, _ := n.Member.(string)
		service, _, _ := strings.Cut(member, "\x00")
		if !done[service] {
			done[service] = true
			c, err := s.reindex(ctx, service, "", "")
			if err != nil {
				return changed, err
			}
			changed = changed || c
		}
		if n.Score < cutoff {
			old = append(old, member)
		}
	}
	if len(old) > 0 {
		if err := s.rdb.ZRem(ctx, s.keys.index("pending"), old...).Err(); err != nil {
			return changed, unavailable("repair", err)
		}
	}
	return changed, nil
}
