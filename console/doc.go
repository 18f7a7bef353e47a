// Package console is trendstream's web console: the pages a retail planner
// opens first, served beside the processor's HTTP API, and the backtest
// report page.
//
// # Overview
//
// A Server renders, on the server, an overview of one instance (events per
// second, series, forecasts published, dead letters by reason, lag and
// watermark per partition, readiness, and trending series when the
// backend has them), a series search, and a page per series (its closed
// and open buckets, the published forecast with its p10-p90 band and its
// trend, and optional sections: other models' forecasts at the published
// origin, charted and tabulated at the steps the backend has, each
// model's recent errors and weight, an explanation and a replenishment
// recommendation). Charts are SVG
// written by Go through html/template, so every value from events (store,
// SKU, model names) is escaped, and pages work without script. A small
// script served from the binary applies live updates: the server pushes
// re-rendered fragments over server-sent events, sampling the overview
// once per Interval for every open page together and looking up only the
// series a page shows. Templates, style sheet and script are embedded; no
// third-party code is used. WriteReport draws a backtest's metrics and
// traces in the same style into one self-contained page.
//
// The console reads its data through Backend, which it declares: the
// overview numbers, a series lookup and a series search. Fields of Series
// and Overview marked optional render only when set, so backends can add
// them one by one. The console never sees Kafka or the state store.
//
// # Instances
//
// Each instance's console shows the partitions that instance serves and
// says so. A series of a partition another instance serves gets a page
// saying which partition it is in and that another instance's console
// shows it (Backend.Series returns a *NotOwnedError), with a link to that
// console when the backend knows its address (NotOwnedError.Owner). It
// links rather than redirects: the other console may be on another host
// name, where the browser has no session yet.
//
// # Access control
//
// A Guard puts a bearer token in front of the console and anything else
// behind it (the series API, optionally /metrics), leaving chosen paths
// (health probes) open. Programs send "Authorization: Bearer TOKEN";
// browsers sign in once at /login and get a cookie holding an HMAC of an
// expiry time keyed by the token (see Guard). Tokens and cookies are
// compared in constant time and never logged.
//
// # Concurrency
//
// Server and Guard are safe for concurrent use. Server.Run owns the
// sampler; when its context ends it ends every live-update stream, so an
// http.Server's Shutdown is not held up by open pages. Each stream is
// served on its request's goroutine and ends with its request.
//
// # Invariants
//
// Nothing from a backend reaches a page unescaped; pages set a Content
// Security Policy that allows no inline script or style. A page never
// grows or shrinks when live data arrives: figures use tabular digits and
// chart boxes have fixed aspect ratios.
package console
