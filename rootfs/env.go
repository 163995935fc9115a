package rootfs

import (
	"fmt"
	"strings"
)

// Login PATHs, as Debian's login.defs and Alpine's /etc/profile set them:
// the sbin directories only for root.
const (
	RootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	UserPath = "/usr/local/bin:/usr/bin:/bin"
)

// LoginEnv returns the environment a login as id would get: HOME, USER,
// LOGNAME, SHELL and PATH, TERM from the host (so a terminal keeps working),
// then the -e settings in order, each overriding what came before. Nothing
// else of the host's environment reaches the guest: host paths and
// credentials in it (SSH_AUTH_SOCK, XDG_*, LD_*) mean nothing or harm
// inside.
//
// An override is K=V, or a bare K to pass the host's value of K (hostEnv),
// dropped when the host has none, as docker run -e does.
func LoginEnv(id Identity, overrides []string, hostEnv func(string) (string, bool)) ([]string, error) {
	p := UserPath
	if id.UID == 0 {
		p = RootPath
	}
	env := []string{
		"HOME=" + id.Home,
		"USER=" + id.Name,
		"LOGNAME=" + id.Name,
		"SHELL=" + id.Shell,
		"PATH=" + p,
	}
	if t, ok := hostEnv("TERM"); ok {
		env = append(env, "TERM="+t)
	}
	for _, kv := range overrides {
		k, v, hasV := strings.Cut(kv, "=")
		if k == "" || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid environment setting %q (want KEY=VALUE)", kv)
		}
		if !hasV {
			hv, ok := hostEnv(k)
			if !ok {
				continue
			}
			v = hv
		}
		env = setEnv(env, k, v)
	}
	return env, nil
}

// GetEnv returns the value of key in env (KEY=VALUE entries), the last one
// winning as in execve's consumers.
func GetEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if ek, _, _ := strings.Cut(kv, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
