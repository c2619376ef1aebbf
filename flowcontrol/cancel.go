package flowcontrol

// CancelKey marks a run whose cancellation was requested, so that a step about to start in
// the same workflow task sees it. It expires with the app's event retention.
func CancelKey(runID string) string { return "tempest:cancel:" + runID }
