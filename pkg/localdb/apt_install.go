package localdb

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// aptInstall installs Debian packages when we are root on Debian, and otherwise
// says exactly what to install. A file lock keeps concurrent test binaries from
// running apt-get at the same time. found reports whether the package's binaries are there now (another test
// binary may have installed them while this one waited for the lock).
func aptInstall(found func() bool, pkgs ...string) error {
	pkg := strings.Join(pkgs, " ")
	_, debErr := os.Stat("/etc/debian_version")
	if os.Geteuid() != 0 || debErr != nil {
		return fmt.Errorf("install %s (Debian/Ubuntu: sudo apt-get install -y %s), or use servers of your own: "+
			"DATABASE_URL and REDIS_URL for the demo, TEST_DATABASE_URL and TEST_REDIS_URL for the tests", pkg, pkg)
	}
	// The lock's name predates this package; test binaries built before it still
	// take the same lock.
	lock, err := os.OpenFile(os.TempDir()+"/pgtest-apt.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if found() {
		return nil
	}
	fmt.Fprintf(os.Stderr, "localdb: installing %s with apt-get\n", pkg)
	update := exec.Command("apt-get", "update")
	update.Stdout, update.Stderr = os.Stderr, os.Stderr
	if err := update.Run(); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	install := exec.Command("apt-get", append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)...)
	install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	if err := install.Run(); err != nil {
		return errors.Join(fmt.Errorf("apt-get install %s", pkg), err)
	}
	return nil
}

// installed is what find finds (a binary's path), after installing the Debian
// package pkg with aptInstall when find finds nothing at first.
func installed(pkg string, find func() string) (string, error) {
	if p := find(); p != "" {
		return p, nil
	}
	if err := aptInstall(func() bool { return find() != "" }, pkg); err != nil {
		return "", fmt.Errorf("%s not found: %w", pkg, err)
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%s was installed but is still not found", pkg)
}
