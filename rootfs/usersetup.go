package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// UserRequest is what --user and --group asked for.
type UserRequest struct {
	User  string // NAME[:UID]; "" runs as the guest's root
	Group string // NAME[:GID]; "" uses the user's primary group
	// Chown makes a created home directory really owned by the user (root
	// mode). Without it the directory stays the caller's and
	// UserSetup.Created tells the rootless side which owner to fake.
	Chown bool
}

// CreatedPath is a guest path that user setup created, with the owner the
// guest must see.
type CreatedPath struct {
	Path     string // guest path
	UID, GID int
	Mode     uint32 // permission bits
}

// UserSetup is the result of SetupUser.
type UserSetup struct {
	Identity Identity
	Created  []CreatedPath // directories created, parents first
	Modified []string      // guest files rewritten (/etc/group, /etc/passwd, /etc/shadow)
}

// HomeMode is the mode of a home directory user setup creates: 0755, as
// busybox adduser (Alpine) and Debian's useradd before bookworm make it.
const HomeMode = 0755

// ErrHostRoot is returned when user setup is asked of the host's own root.
var ErrHostRoot = errors.New("the rootfs is the host's own root directory")

// IsSameDir reports whether a and b are the same directory (same device and
// inode after following symlinks).
func IsSameDir(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, &os.PathError{Op: "stat", Path: a, Err: err}
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, &os.PathError{Op: "stat", Path: b, Err: err}
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// SetupUser makes sure the user and group of req exist in the guest tree at
// root and returns who the command runs as. Files are only rewritten when
// something must be added, so a repeated run leaves them byte-identical with
// their mtimes; an existing name with another id is an error, never a
// rewrite.
func SetupUser(root string, req UserRequest) (*UserSetup, error) {
	user, uid, hasUID, err := parseNameID(req.User, "user")
	if err != nil {
		return nil, err
	}
	group, gid, hasGID, err := parseNameID(req.Group, "group")
	if err != nil {
		return nil, err
	}
	if user != "" || group != "" {
		same, err := IsSameDir(root, "/")
		if err != nil {
			return nil, err
		}
		if same {
			return nil, fmt.Errorf("refusing user setup in %s: %w", root, ErrHostRoot)
		}
	}
	g, err := OpenGuestRoot(root)
	if err != nil {
		return nil, err
	}
	defer g.Close()

	// Concurrent runs on one tree must not lose each other's additions
	// (read, append, rename): they serialise on the guest's /etc, locked
	// with flock so nothing is created in the tree for it.
	if user != "" || group != "" {
		if etc, err := g.Open("/etc", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			defer etc.Close()
			if err := retryEINTR0(func() error { return unix.Flock(int(etc.Fd()), unix.LOCK_EX) }); err != nil {
				return nil, fmt.Errorf("lock guest /etc: %w", err)
			}
		}
	}

	s := &setup{root: g, chown: req.Chown, res: &UserSetup{}}
	if s.passwd, err = s.load("/etc/passwd"); err != nil {
		return nil, err
	}
	if s.group, err = s.load("/etc/group"); err != nil {
		return nil, err
	}
	if s.shadow, err = s.load("/etc/shadow"); err != nil {
		return nil, err
	}
	if err := s.run(user, uid, hasUID, group, gid, hasGID); err != nil {
		return nil, err
	}
	return s.res, nil
}

type setup struct {
	root                  *GuestRoot
	chown                 bool
	passwd, group, shadow *dbFile
	res                   *UserSetup
}

func (s *setup) run(user string, uid int, hasUID bool, group string, gid int, hasGID bool) error {
	id := &s.res.Identity
	// The group first, then the user, then shadow: at every step the files
	// are consistent (a passwd line never names a missing group).
	if group != "" {
		e := s.group.lookup(group)
		switch {
		case e != nil:
			have, _ := strconv.Atoi(e[2])
			if hasGID && have != gid {
				return fmt.Errorf("group %s exists in the guest with gid %d, not %d", group, have, gid)
			}
			gid = have
		case !hasGID:
			return fmt.Errorf("group %s does not exist in the guest's /etc/group (give its gid to create it: --group %s:GID)", group, group)
		default:
			if o := s.group.lookupID(2, gid); o != nil {
				return fmt.Errorf("gid %d already belongs to group %s in the guest", gid, o[0])
			}
			s.group.add(fmt.Sprintf("%s:x:%d:", group, gid))
		}
	}

	if user == "" {
		user = "root"
		uid, hasUID = 0, false
	}
	e := s.passwd.lookup(user)
	created := false
	switch {
	case e != nil:
		have, _ := strconv.Atoi(e[2])
		if hasUID && have != uid {
			return fmt.Errorf("user %s exists in the guest with uid %d, not %d", user, have, uid)
		}
		id.Name, id.UID = user, have
		id.GID, _ = strconv.Atoi(e[3])
		id.Home, id.Shell = e[5], e[6]
	case user == "root" && !hasUID:
		// A tree without a root entry (or without /etc/passwd) still runs
		// as root, with login's defaults.
		id.Name, id.UID, id.GID, id.Home = "root", 0, 0, "/root"
	case !hasUID:
		return fmt.Errorf("user %s does not exist in the guest's /etc/passwd (give a uid to create it: --user %s:UID)", user, user)
	default:
		if o := s.passwd.lookupID(2, uid); o != nil {
			return fmt.Errorf("uid %d already belongs to user %s in the guest", uid, o[0])
		}
		if group == "" {
			// Like useradd's USERGROUPS_ENAB: a group of the user's name
			// with the same id.
			if o := s.group.lookup(user); o != nil {
				return fmt.Errorf("group %s already exists in the guest (pass --group %s to use it)", user, user)
			}
			if o := s.group.lookupID(2, uid); o != nil {
				return fmt.Errorf("gid %d already belongs to group %s in the guest (pass --group NAME:GID)", uid, o[0])
			}
			s.group.add(fmt.Sprintf("%s:x:%d:", user, uid))
			gid = uid
		}
		id.Name, id.UID, id.GID = user, uid, gid
		id.Home, id.Shell = "/home/"+user, "/bin/sh"
		s.passwd.add(fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", user, uid, gid, user, id.Home, id.Shell))
		created = true
	}
	if group != "" {
		id.GID = gid
	}
	if id.Shell == "" {
		id.Shell = "/bin/sh"
	}
	if id.Home == "" {
		id.Home = "/"
	}
	if hasUID && s.shadow.exists && s.shadow.lookup(user) == nil {
		days := time.Now().Unix() / 86400
		s.shadow.add(fmt.Sprintf("%s:!:%d:0:99999:7:::", user, days))
	}

	for _, f := range []*dbFile{s.group, s.passwd, s.shadow} {
		if err := s.save(f); err != nil {
			return err
		}
	}

	// A created user gets its home; so does an ensured one whose standard
	// home went missing. An existing user's odd home ("/nonexistent") is
	// never created.
	if created || hasUID && id.Home == "/home/"+user {
		if _, err := s.root.Stat(id.Home); errors.Is(err, unix.ENOENT) {
			if err := s.makeHome(id.Home, id.UID, id.GID); err != nil {
				return err
			}
		}
	}
	id.Groups = s.groupsOf(id.Name, id.GID)
	return nil
}

// groupsOf returns the supplementary groups of user as initgroups(3) would:
// the primary group first, then every group listing user as a member.
func (s *setup) groupsOf(user string, primary int) []int {
	groups := []int{primary}
	for _, e := range s.group.entries() {
		if len(e) < 4 {
			continue
		}
		gid, err := strconv.Atoi(e[2])
		if err != nil || gid == primary {
			continue
		}
		for _, m := range strings.Split(e[3], ",") {
			if strings.TrimSpace(m) == user {
				groups = append(groups, gid)
				break
			}
		}
	}
	return groups
}

func (s *setup) makeHome(home string, uid, gid int) error {
	parents, err := s.root.MkdirAll(path.Dir(home), 0755, s.chown)
	for _, p := range parents {
		s.res.Created = append(s.res.Created, CreatedPath{Path: p, UID: 0, GID: 0, Mode: 0755})
	}
	if err != nil {
		return fmt.Errorf("create home directory: %w", err)
	}
	made, err := s.root.Mkdir(home, HomeMode, uid, gid, s.chown)
	if made {
		s.res.Created = append(s.res.Created, CreatedPath{Path: path.Clean(home), UID: uid, GID: gid, Mode: HomeMode})
	}
	if err != nil {
		return fmt.Errorf("create home directory: %w", err)
	}
	return nil
}

// dbFile is one colon-separated database (/etc/passwd, /etc/group,
// /etc/shadow), kept as its original bytes plus lines to append, so
// unrelated lines (comments, NIS "+" entries, odd spacing) survive verbatim.
type dbFile struct {
	path   string
	perm   uint32
	data   []byte
	added  []string
	exists bool
}

func (s *setup) load(p string) (*dbFile, error) {
	perm := uint32(0644)
	if p == "/etc/shadow" {
		perm = 0640
	}
	f := &dbFile{path: p, perm: perm}
	data, err := s.root.ReadFile(p)
	switch {
	case err == nil:
		f.data, f.exists = data, true
	case errors.Is(err, unix.ENOENT):
	default:
		return nil, fmt.Errorf("guest %s: %w", p, err)
	}
	return f, nil
}

func (f *dbFile) entries() [][]string {
	var out [][]string
	lines := strings.Split(string(f.data), "\n")
	lines = append(lines, f.added...)
	for _, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.Split(l, ":"))
	}
	return out
}

// lookup returns the fields of the entry named name. passwd needs 7 fields,
// group 4; shorter lines are treated as garbage and ignored, like getpwnam.
func (f *dbFile) lookup(name string) []string {
	for _, e := range f.entries() {
		if e[0] == name && len(e) >= f.minFields() {
			return e
		}
	}
	return nil
}

func (f *dbFile) lookupID(field, id int) []string {
	want := strconv.Itoa(id)
	for _, e := range f.entries() {
		if len(e) >= f.minFields() && e[field] == want {
			return e
		}
	}
	return nil
}

func (f *dbFile) minFields() int {
	switch f.path {
	case "/etc/passwd":
		return 7
	case "/etc/group":
		return 4
	}
	return 2
}

func (f *dbFile) add(line string) { f.added = append(f.added, line) }

func (s *setup) save(f *dbFile) error {
	if len(f.added) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.Write(f.data)
	if len(f.data) > 0 && f.data[len(f.data)-1] != '\n' {
		b.WriteByte('\n')
	}
	for _, l := range f.added {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if !f.exists {
		if _, err := s.root.MkdirAll(path.Dir(f.path), 0755, s.chown); err != nil {
			return fmt.Errorf("guest %s: %w", f.path, err)
		}
	}
	if err := s.root.WriteFileAtomic(f.path, b.Bytes(), f.perm); err != nil {
		return fmt.Errorf("guest %s: %w", f.path, err)
	}
	s.res.Modified = append(s.res.Modified, f.path)
	return nil
}

// parseNameID splits NAME[:ID]. Names follow the portable rules shadow's
// useradd enforces by default; ids are 0..2^32-2 (2^32-1 is (uid_t)-1).
func parseNameID(s, what string) (name string, id int, hasID bool, err error) {
	if s == "" {
		return "", 0, false, nil
	}
	name, ids, hasID := strings.Cut(s, ":")
	if !validName(name) {
		return "", 0, false, fmt.Errorf("invalid %s name %q (letters, digits, '_', '-', '.', not starting with '-', at most 32 characters)", what, name)
	}
	if hasID {
		n, perr := strconv.ParseUint(ids, 10, 32)
		if perr != nil || n == 1<<32-1 {
			return "", 0, false, fmt.Errorf("invalid %s id %q in %q", what, ids, s)
		}
		id = int(n)
	}
	return name, id, hasID, nil
}

func validName(n string) bool {
	if n == "" || len(n) > 32 || n[0] == '-' || n == "." || n == ".." {
		return false
	}
	for i, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		case c == '$' && i == len(n)-1: // Samba machine accounts
		default:
			return false
		}
	}
	return true
}
