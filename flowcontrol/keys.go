package flowcontrol

import (
	"crypto/sha256"
	"encoding/hex"
)

// The Redis keyspace, all of it: every key starts with "tempest:", and the keys one script
// touches share a hash tag ({...}) so that Redis Cluster keeps them in one slot.
//
//	tempest:{f:<function>}:rate:<run>, :th:<run>   admission decisions remembered for retries (admit.lua)
//	tempest:{f:<function>}:rl:<key>, :th:<key>     rate-limit and throttle GCRA state (admit.lua)
//	tempest:{f:<function>}:gate:<key>, :gate-pass:<run>   throttle gate where a run begins (gate.lua)
//	tempest:{f:<function>}:<buffer keys>           debounce and batch buffers (buffer_*.lua)
//	tempest:{s:<function>}:<hash of key>           singleton lock (singleton.lua, cas.lua)
//	tempest:{c:<scope>:<hash of key>}:leases, :waiting, :seen   concurrency limit (concurrency.lua)
//	tempest:concurrency:freed                      pub/sub: a released lease names its key
//	tempest:{w:<event>}:wait:<id>, :any, :paths, :m:<path>:<value>   wait and cancelOn index (waits.go)
//	tempest:payload:<sha256>                       a payload stored by reference (payloads.go)
//	tempest:cancel:<run>                           a run's cancellation was requested
//	tempest:skipped:<run>                          a run skipped by its singleton (package adapter)
//	tempest:cron:<app>, :sdk:<env>:<app>            an app's schedule ids (package adapter)
//	tempest:{ck:<run>}:call, :ops, :bytes           an SDK run's checkpoints (checkpoint.lua)
//	tempest:{ck:<run>}:state                       an SDK call's steps and events sent by use_api
//	tempest:{reg:<env>}:apps, :version, :changed, :paused   the environment's registry (internal/registry)
//
// Every key expires or is removed by its owner; each file says when.

func functionTag(function string) string { return "tempest:{f:" + function + "}" }

// bufferPrefix starts the keys of a function's debounce and batch buffers.
func bufferPrefix(function string) string { return functionTag(function) + ":" }

// SingletonKey is the lock of (function, key value); the hash tag is the function.
func SingletonKey(function, value string) string {
	h := sha256.Sum256([]byte(value))
	return "tempest:{s:" + function + "}:" + hex.EncodeToString(h[:12])
}

// ConcurrencyKey is the Redis key of one concurrency limit; keys of one limit share a tag.
func ConcurrencyKey(scope, value string) string {
	return "tempest:{c:" + scope + ":" + hashed(value) + "}"
}

// freedChannel is the Redis pub/sub channel on which a released lease names its key.
const freedChannel = "tempest:concurrency:freed"

func waitTag(event string) string           { return "tempest:{w:" + event + "}" }
func waitKey(event, id string) string       { return waitTag(event) + ":wait:" + id }
func anyKey(event string) string            { return waitTag(event) + ":any" }
func pathsKey(event string) string          { return waitTag(event) + ":paths" }
func matchKey(event, path, v string) string { return waitTag(event) + ":m:" + path + ":" + v }

// checkpointKeys are the keys of an SDK run's checkpoints; the run is the hash tag.
func checkpointKeys(run string) (call, ops, size string) {
	p := "tempest:{ck:" + run + "}"
	return p + ":call", p + ":ops", p + ":bytes"
}

func callStateKey(run string) string { return "tempest:{ck:" + run + "}:state" }

func payloadKey(sum string) string { return "tempest:payload:" + sum }

// CancelKey marks a run whose cancellation was requested, so that a step about to start in
// the same workflow task sees it. It expires with the app's event retention.
func CancelKey(runID string) string { return "tempest:cancel:" + runID }

// SkippedKey records a run its singleton skipped (for REST), for the event retention.
func SkippedKey(runID string) string { return "tempest:skipped:" + runID }

// CronSetKey lists the ids of an app's schedules, removed with them.
func CronSetKey(appID string) string { return "tempest:cron:" + appID }

// RegistryKeys are an environment's registry: its apps (hash), the version of its
// functions, the channel that announces changes, and its paused functions (hash).
func RegistryKeys(env string) (apps, version, channel, paused string) {
	tag := "tempest:{reg:" + env + "}"
	return tag + ":apps", tag + ":version", tag + ":changed", tag + ":paused"
}
