package localdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// DjangoProject is the stand-in payroll application in testdata/django: the
// payroll application's models with migrations generated once by Django 3.2, so a
// test (or the local cluster) can have the nomina_* tables exactly as Django
// creates them, and its cache (django-redis) read what the service writes.
type DjangoProject struct {
	dir    string // holds manage.py
	python string // a python3 that imports django, psycopg2 and django_redis
}

var djangoProject = sync.OnceValues(findDjangoProject)

// Django finds the repository's testdata/django and a python3 with Django,
// psycopg2, django-redis and requests, installing Debian's python3-django,
// python3-psycopg2, python3-django-redis and python3-requests with apt-get when
// they are missing and we are root on Debian.
func Django() (*DjangoProject, error) { return djangoProject() }

func findDjangoProject() (*DjangoProject, error) {
	root, err := repositoryRoot()
	if err != nil {
		return nil, err
	}
	p := &DjangoProject{dir: filepath.Join(root, "testdata", "django")}
	if _, err := os.Stat(filepath.Join(p.dir, "manage.py")); err != nil {
		return nil, fmt.Errorf("the Django project: %w", err)
	}
	if p.python = djangoPython(); p.python != "" {
		return p, nil
	}
	if err := aptInstall(func() bool { return djangoPython() != "" },
		"python3-django", "python3-psycopg2", "python3-django-redis", "python3-requests"); err != nil {
		return nil, fmt.Errorf("python3 with Django, psycopg2 and django-redis not found: %w", err)
	}
	if p.python = djangoPython(); p.python == "" {
		return nil, errors.New("python3-django was installed but python3 still cannot import django, psycopg2 and django_redis")
	}
	return p, nil
}

// djangoPython is the first python3 that imports django, psycopg2,
// django_redis and requests (pythonWith).
func djangoPython() string { return pythonWith("import django, psycopg2, django_redis, requests") }

// repositoryRoot is the directory holding go.work, found from this source file
// (tests, binaries built in the checkout) or else from the working directory.
func repositoryRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("the repository root (a directory holding go.work) is not above this package or the working directory")
}

// Command is `manage.py args...` against the database at databaseURL, not yet
// started; the caller may add to its environment (testdata/django's settings
// read DJANGO_REDIS_URL, DJANGO_CACHE_KEY_PREFIX and DJANGO_CACHE_VERSION for
// the cache).
func (p *DjangoProject) Command(ctx context.Context, databaseURL string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.python, append([]string{"manage.py"}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "DJANGO_DATABASE_URL="+databaseURL, "PYTHONDONTWRITEBYTECODE=1")
	return cmd
}

// Python is the python3 that runs the project (Debian's, with its packages).
func (p *DjangoProject) Python() string { return p.python }

// Dir is the project's directory, which holds manage.py.
func (p *DjangoProject) Dir() string { return p.dir }

// Manage runs `manage.py args...` against the database at databaseURL and returns
// its combined output.
func (p *DjangoProject) Manage(ctx context.Context, databaseURL string, args ...string) ([]byte, error) {
	out, err := p.Command(ctx, databaseURL, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("manage.py %s: %w: %s", args[0], err, tail(out, 4000))
	}
	return out, nil
}

// Migrate creates the payroll application's tables in the database at databaseURL
// with Django's own migrations (`manage.py migrate`).
func (p *DjangoProject) Migrate(ctx context.Context, databaseURL string) error {
	_, err := p.Manage(ctx, databaseURL, "migrate", "--noinput")
	return err
}
