package ownership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Buckets and meta keys of the database (see docs/design.md, "Fake ownership").
var (
	bucketFiles   = []byte("files")   // Key -> Record
	bucketMeta    = []byte("meta")    // see meta* keys
	bucketJournal = []byte("journal") // Key -> journal entry (temporary chmods)

	metaVersion = []byte("version") // uint64 format version
	metaRoot    = []byte("root")    // Key of the tree's top when last written
	metaGen     = []byte("gen")     // uint64, incremented by every write
)

const formatVersion = 1

// Options tune a Store. The zero value is the default.
type Options struct {
	// LockTimeout bounds the wait for another process's transaction
	// (default 30s).
	LockTimeout time.Duration
	// FlushDelay is the group-commit window: changes are written at most
	// this long after the first one (default 20ms). Negative: every change
	// is committed before the method returns.
	FlushDelay time.Duration
	// RecheckInterval is the minimum time between checks of the database
	// for other processes' changes on a lookup miss (default 100ms).
	RecheckInterval time.Duration
}

// Store is the persistent record of faked file metadata for one rootfs.
//
// Records live in memory for the hot path (every stat of the guest) and in
// a bbolt database file that is opened only for the duration of one
// transaction, so that several runs can share a rootfs: bbolt holds an
// exclusive flock while a database is open for writing. Changes are
// committed in groups (Options.FlushDelay) and on Flush and Close; each
// commit is atomic and durable. A lookup that misses re-reads the database
// when another process has written it (at most every RecheckInterval).
//
// A Store is safe for concurrent use.
type Store struct {
	path string
	root string
	opt  Options

	flushMu sync.Mutex // serialises commits

	mu        sync.Mutex
	recs      map[Key]*Record
	dirty     map[Key]*Record // nil value: delete
	gen       uint64          // database generation recs reflect
	stamp     fileStamp       // the database file as of the last read
	lastCheck time.Time
	timer     *time.Timer
	closed    bool
	sgidDirs  int // records of set-group-ID directories
}

// sgidDir reports whether r makes a directory set-group-ID.
func (r *Record) sgidDir() bool {
	return r.Type == unix.S_IFDIR && r.Flags&HasMode != 0 && r.Mode&unix.S_ISGID != 0
}

// HasSetgidDirs reports whether any directory is set-group-ID in the fake
// world: only then can a file created by root need a record for its
// group. It lets the tracer skip a stat per file creation.
func (s *Store) HasSetgidDirs() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sgidDirs > 0
}

type fileStamp struct {
	ino, size uint64
	mtime     unix.Timespec
}

func stampOf(path string) (fileStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStamp{}, err
	}
	return fileStamp{st.Ino, uint64(st.Size), st.Mtim}, nil
}

// Open opens (creating if needed) the ownership database at dbPath for the
// tree whose top is the host directory root, and loads its records.
//
// If the tree's top is no longer the inode the database was written for
// (the tree was copied, or exported and imported), the records are moved
// to the new inode numbers through their path hints, keeping only those
// whose file still has the recorded type. Temporary permission changes left
// in the journal by a killed run are undone.
func Open(dbPath, root string, opt Options) (*Store, error) {
	if opt.LockTimeout == 0 {
		opt.LockTimeout = 30 * time.Second
	}
	if opt.FlushDelay == 0 {
		opt.FlushDelay = 20 * time.Millisecond
	}
	if opt.RecheckInterval == 0 {
		opt.RecheckInterval = 100 * time.Millisecond
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Store{path: dbPath, root: root, opt: opt, dirty: map[Key]*Record{}}
	rootKey, err := lstatKey(root)
	if err != nil {
		return nil, fmt.Errorf("ownership store %s: %w", dbPath, err)
	}
	err = s.update(func(tx *bolt.Tx) error {
		files, meta, journal, err := ensureBuckets(tx)
		if err != nil {
			return err
		}
		if v := meta.Get(metaVersion); v != nil && (len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion) {
			return fmt.Errorf("unsupported format version %x", v)
		}
		if err := meta.Put(metaVersion, u64(formatVersion)); err != nil {
			return err
		}
		if old := meta.Get(metaRoot); old != nil {
			oldKey, err := keyFrom(old)
			if err != nil {
				return err
			}
			if oldKey != rootKey {
				if err := rekeyBucket(files, root, true); err != nil {
					return err
				}
				if err := rekeyBucket(journal, root, false); err != nil {
					return err
				}
			}
		}
		if err := meta.Put(metaRoot, rootKey.bytes()); err != nil {
			return err
		}
		if err := followReplaced(files, root); err != nil {
			return err
		}
		if err := recoverJournal(journal, root); err != nil {
			return err
		}
		if err := bumpGen(meta); err != nil {
			return err
		}
		return s.loadTx(tx)
	})
	if err != nil {
		return nil, fmt.Errorf("ownership store %s: %w", dbPath, err)
	}
	return s, nil
}

// Root is the host path of the tree the store describes.
func (s *Store) Root() string { return s.root }

// Path is the database file.
func (s *Store) Path() string { return s.path }

func ensureBuckets(tx *bolt.Tx) (files, meta, journal *bolt.Bucket, err error) {
	if files, err = tx.CreateBucketIfNotExists(bucketFiles); err != nil {
		return
	}
	if meta, err = tx.CreateBucketIfNotExists(bucketMeta); err != nil {
		return
	}
	journal, err = tx.CreateBucketIfNotExists(bucketJournal)
	return
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func bumpGen(meta *bolt.Bucket) error {
	var g uint64
	if v := meta.Get(metaGen); len(v) == 8 {
		g = binary.BigEndian.Uint64(v)
	}
	return meta.Put(metaGen, u64(g+1))
}

func genOf(tx *bolt.Tx) uint64 {
	if m := tx.Bucket(bucketMeta); m != nil {
		if v := m.Get(metaGen); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// loadTx replaces the in-memory records with the database's, then lays the
// not yet committed changes over them. Malformed records are skipped.
// Caller holds no lock on s.mu (it is taken here).
func (s *Store) loadTx(tx *bolt.Tx) error {
	recs := map[Key]*Record{}
	if b := tx.Bucket(bucketFiles); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			key, err := keyFrom(k)
			if err != nil {
				return nil
			}
			r, err := unmarshalRecord(v)
			if err != nil {
				return nil
			}
			recs[key] = r
			return nil
		})
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.dirty {
		if r == nil {
			delete(recs, k)
		} else {
			recs[k] = r
		}
	}
	s.recs = recs
	s.sgidDirs = 0
	for _, r := range recs {
		if r.sgidDir() {
			s.sgidDirs++
		}
	}
	s.gen = genOf(tx)
	return nil
}

// update runs fn in a write transaction on a freshly opened database that
// is closed again before update returns, so that the flock is held only
// for the transaction. EINTR from flock is retried by bbolt's timeout loop.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.opt.LockTimeout})
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if st, serr := stampOf(s.path); serr == nil {
			s.mu.Lock()
			s.stamp = st
			s.lastCheck = time.Now()
			s.mu.Unlock()
		}
	}
	return err
}

// view runs fn in a read-only transaction (shared flock).
func (s *Store) view(fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.opt.LockTimeout, ReadOnly: true})
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the record for key if there is one for a file of on-disk
// type typ (S_IFMT bits). A record of another type is stale (its inode was
// reused by a file created outside nook) and is deleted.
func (s *Store) Get(key Key, typ uint32) (*Record, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	r, ok := s.recs[key]
	if !ok {
		recheck := time.Since(s.lastCheck) >= s.opt.RecheckInterval
		s.mu.Unlock()
		if !recheck || !s.recheck() {
			return nil, false
		}
		s.mu.Lock()
		r, ok = s.recs[key]
		if !ok {
			s.mu.Unlock()
			return nil, false
		}
	}
	if r.Type != typ&unix.S_IFMT {
		s.setLocked(key, nil)
		s.mu.Unlock()
		return nil, false
	}
	r = r.clone()
	s.mu.Unlock()
	return r, true
}

// recheck reloads the records if another process changed the database
// since it was last read; it reports whether it reloaded.
func (s *Store) recheck() bool {
	st, err := stampOf(s.path)
	s.mu.Lock()
	s.lastCheck = time.Now()
	same := err != nil || st == s.stamp
	gen := s.gen
	s.mu.Unlock()
	if same {
		return false
	}
	reloaded := false
	err = s.view(func(tx *bolt.Tx) error {
		if genOf(tx) == gen {
			return nil
		}
		reloaded = true
		return s.loadTx(tx)
	})
	if err != nil {
		return false
	}
	s.mu.Lock()
	s.stamp = st
	s.mu.Unlock()
	return reloaded
}

// Put sets the record for key (a copy of r is stored).
func (s *Store) Put(key Key, r *Record) error {
	r = r.clone()
	r.Type &= unix.S_IFMT
	return s.set(key, r)
}

// Delete removes the record for key, if any.
func (s *Store) Delete(key Key) error {
	s.mu.Lock()
	_, ok := s.recs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.set(key, nil)
}

func (s *Store) set(key Key, r *Record) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("ownership store: closed")
	}
	s.setLocked(key, r)
	s.mu.Unlock()
	if s.opt.FlushDelay < 0 {
		return s.Flush()
	}
	return nil
}

// setLocked records a change and arms the group-commit timer.
func (s *Store) setLocked(key Key, r *Record) {
	if old, ok := s.recs[key]; ok && old.sgidDir() {
		s.sgidDirs--
	}
	if r == nil {
		delete(s.recs, key)
	} else {
		s.recs[key] = r
		if r.sgidDir() {
			s.sgidDirs++
		}
	}
	s.dirty[key] = r
	s.armLocked(s.opt.FlushDelay)
}

// armLocked starts the group-commit timer unless it runs. A commit that
// fails in the background (the lock timed out, the disk is full) keeps its
// changes pending and tries again a second later; Close reports an error
// that persists.
func (s *Store) armLocked(delay time.Duration) {
	if s.opt.FlushDelay <= 0 || s.timer != nil || s.closed {
		return
	}
	s.timer = time.AfterFunc(delay, func() {
		if err := s.Flush(); err != nil {
			s.mu.Lock()
			s.armLocked(time.Second)
			s.mu.Unlock()
		}
	})
}

// Flush commits every pending change in one transaction. When another
// process has written the database since it was last read, the
// transaction also reloads its records.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	batch := s.dirty
	s.dirty = map[Key]*Record{}
	gen := s.gen
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		files, meta, _, err := ensureBuckets(tx)
		if err != nil {
			return err
		}
		other := genOf(tx) != gen
		for k, r := range batch {
			if r == nil {
				err = files.Delete(k.bytes())
			} else {
				err = files.Put(k.bytes(), r.marshal())
			}
			if err != nil {
				return err
			}
		}
		if err := bumpGen(meta); err != nil {
			return err
		}
		if other {
			return s.loadTx(tx)
		}
		s.mu.Lock()
		s.gen = genOf(tx)
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		// Put the batch back under anything changed meanwhile, so that a
		// later Flush retries it.
		s.mu.Lock()
		for k, r := range batch {
			if _, newer := s.dirty[k]; !newer {
				s.dirty[k] = r
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("ownership store %s: commit: %w", s.path, err)
	}
	return nil
}

// Close commits pending changes. The store must not be used afterwards.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	err := s.Flush()
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	return err
}

// Records returns a copy of every record (for export and tests).
func (s *Store) Records() map[Key]*Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[Key]*Record, len(s.recs))
	for k, r := range s.recs {
		m[k] = r.clone()
	}
	return m
}

// Unlinked is called after a successful unlink, rmdir or rename over an
// existing file, with the file's key and type, its link count before the
// call (for rmdir any count: a directory has one name) and the name
// removed. The record goes with the last link; while other links remain,
// a hint naming the removed link is cleared (Linked sets a new one).
func (s *Store) Unlinked(key Key, typ uint32, nlinkBefore uint64, rel string) error {
	if s == nil {
		return nil
	}
	if typ&unix.S_IFMT == unix.S_IFDIR || nlinkBefore <= 1 {
		return s.Delete(key)
	}
	s.mu.Lock()
	r, ok := s.recs[key]
	stale := ok && r.Path == filepath.Clean(rel)
	s.mu.Unlock()
	if stale {
		n := r.clone()
		n.Path = ""
		return s.set(key, n)
	}
	return nil
}

// Linked is called after a successful link(2): the new name becomes the
// record's path hint.
func (s *Store) Linked(key Key, newRel string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	r, ok := s.recs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	n := r.clone()
	n.Path = filepath.Clean(newRel)
	return s.set(key, n)
}

// Renamed updates the path hints after a successful rename of oldRel to
// newRel (both relative to the top) of the file key of type typ: its own
// hint and, for a directory, the hints of everything recorded below it.
func (s *Store) Renamed(key Key, typ uint32, oldRel, newRel string) error {
	if s == nil {
		return nil
	}
	oldRel, newRel = filepath.Clean(oldRel), filepath.Clean(newRel)
	s.mu.Lock()
	var changed []Key
	var recs []*Record
	if r, ok := s.recs[key]; ok && r.Path != newRel {
		n := r.clone()
		n.Path = newRel
		changed = append(changed, key)
		recs = append(recs, n)
	}
	if typ&unix.S_IFMT == unix.S_IFDIR {
		for k, r := range s.recs {
			if k != key && strings.HasPrefix(r.Path, oldRel+"/") {
				n := r.clone()
				n.Path = newRel + r.Path[len(oldRel):]
				changed = append(changed, k)
				recs = append(recs, n)
			}
		}
	}
	s.mu.Unlock()
	for i, k := range changed {
		if err := s.set(k, recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// CopyTo writes the records to a new database at newDB for a copy of the
// tree at newRoot (for example an ephemeral run's copy), re-keyed through
// their path hints. Only records whose path exists in the copy with the
// recorded type are carried over.
func (s *Store) CopyTo(newDB, newRoot string) error {
	if err := s.Flush(); err != nil {
		return err
	}
	newRoot, err := filepath.Abs(newRoot)
	if err != nil {
		return err
	}
	rootKey, err := lstatKey(newRoot)
	if err != nil {
		return fmt.Errorf("copy ownership records: %w", err)
	}
	recs := s.Records()
	dst := &Store{path: newDB, root: newRoot, opt: s.opt, dirty: map[Key]*Record{}}
	err = dst.update(func(tx *bolt.Tx) error {
		files, meta, _, err := ensureBuckets(tx)
		if err != nil {
			return err
		}
		if err := meta.Put(metaVersion, u64(formatVersion)); err != nil {
			return err
		}
		if err := meta.Put(metaRoot, rootKey.bytes()); err != nil {
			return err
		}
		for _, r := range recs {
			k, ok := keyAt(newRoot, r.Path, r.Type)
			if !ok {
				continue
			}
			if err := files.Put(k.bytes(), r.marshal()); err != nil {
				return err
			}
		}
		return bumpGen(meta)
	})
	if err != nil {
		return fmt.Errorf("copy ownership records to %s: %w", newDB, err)
	}
	return nil
}

// rekeyBucket moves every entry of b to the key its path hint has under
// root now, dropping those whose file is gone or changed type.
func rekeyBucket(b *bolt.Bucket, root string, isFiles bool) error {
	type kv struct{ k, v []byte }
	var moves []kv
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var path string
		var typ uint32
		if isFiles {
			r, err := unmarshalRecord(v)
			if err != nil {
				drop = append(drop, append([]byte(nil), k...))
				return nil
			}
			path, typ = r.Path, r.Type
		} else {
			j, err := unmarshalJournal(v)
			if err != nil {
				drop = append(drop, append([]byte(nil), k...))
				return nil
			}
			path, typ = j.Path, j.Type
		}
		drop = append(drop, append([]byte(nil), k...))
		if nk, ok := keyAt(root, path, typ); ok {
			moves = append(moves, kv{nk.bytes(), append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for _, m := range moves {
		if err := b.Put(m.k, m.v); err != nil {
			return err
		}
	}
	return nil
}

// followReplaced moves each record whose path now holds another file of
// the same type, with no record of its own, to that file. Tools outside
// nook replace files by writing a new one and renaming it over the old
// (nook's own user setup rewriting /etc/shadow, sed -i, editors): the
// faked owner and mode belong to the path, as when root does the same.
// (A file moved away outside nook and another made in its place is
// indistinguishable, and takes the record too.)
func followReplaced(b *bolt.Bucket, root string) error {
	type move struct {
		from, to []byte
		v        []byte
	}
	var moves []move
	err := b.ForEach(func(k, v []byte) error {
		r, err := unmarshalRecord(v)
		if err != nil || r.Path == "" || filepath.IsAbs(r.Path) {
			return nil
		}
		st, err := lstatBeneath(root, r.Path)
		if err != nil || st.Mode&unix.S_IFMT != r.Type {
			return nil
		}
		nk := Key{st.Dev, st.Ino}.bytes()
		if string(nk) == string(k) || b.Get(nk) != nil {
			return nil
		}
		moves = append(moves, move{append([]byte(nil), k...), nk, append([]byte(nil), v...)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range moves {
		if b.Get(m.to) != nil {
			continue // two records claimed the same file: the first wins
		}
		if err := b.Delete(m.from); err != nil {
			return err
		}
		if err := b.Put(m.to, m.v); err != nil {
			return err
		}
	}
	return nil
}

// keyAt returns the key of root/rel if it exists with type typ. rel must
// stay inside root: hints come from our own database, but a tree may have
// been changed outside nook, so symlinks on the way are not followed.
func keyAt(root, rel string, typ uint32) (Key, bool) {
	st, err := lstatBeneath(root, rel)
	if err != nil || st.Mode&unix.S_IFMT != typ&unix.S_IFMT {
		return Key{}, false
	}
	return Key{st.Dev, st.Ino}, true
}

func lstatKey(p string) (Key, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return Key{}, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return Key{st.Dev, st.Ino}, nil
}
