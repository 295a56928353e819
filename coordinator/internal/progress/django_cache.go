package progress

import "strconv"

// DjangoCache is how the payroll application's Django cache (django-redis with
// its JSONSerializer) names its keys: Django's default key function,
// "{KEY_PREFIX}:{VERSION}:{key}". The store writes each closing's progress and
// metrics under these names too, so the application's cache.get of
// "consolidacion_progress_cierre_{id}" reads them unchanged (README, "The payroll
// application's progress view").
type DjangoCache struct {
	// KeyPrefix is the cache's KEY_PREFIX (DJANGO_CACHE_KEY_PREFIX; default: empty).
	KeyPrefix string
	// Version is the cache's VERSION (DJANGO_CACHE_VERSION; default:
	// DefaultDjangoCacheVersion, 1).
	Version int
}

// DefaultDjangoCacheVersion is Django's own default cache VERSION.
const DefaultDjangoCacheVersion = 1

// Key is key as Django's default key function makes it: '%s:%s:%s' % (key_prefix,
// version, key).
func (d DjangoCache) Key(key string) string {
	return d.KeyPrefix + ":" + strconv.Itoa(d.Version) + ":" + key
}
