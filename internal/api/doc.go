// Package api owns Cohort's HTTP surface: the Segment-compatible ingestion
// routes under /v1, the management and query API under /api, health and
// metrics. Handlers only read requests, check keys, call the packages that
// do the work (message, ingest, store) and map their errors to status codes
// and JSON bodies; docs/openapi.yaml describes every route.
package api
