package config

// DefaultWorkerMaxInFlight is WORKER_MAX_IN_FLIGHT's default, the one value for
// both ends of a chunk call: the chunks a worker processes at once
// (worker/internal/server) and the calls a coordinator keeps in flight on one
// worker (coordinator/internal/dispatch). Written once so that a coordinator and
// a worker left unconfigured agree, and so that an unconfigured worker's pool
// (WORKER_MAX_IN_FLIGHT + 2 connections) fits the connection budget of README,
// "Scaling". With several coordinators a worker may be offered more calls than
// it takes; it answers the rest busy (RESOURCE_EXHAUSTED) and the coordinator
// tries another worker.
const DefaultWorkerMaxInFlight = 2
