package flowcontrol

// replyInt is a script reply's first element as an integer.
func replyInt(res []any) (int64, bool) {
	if len(res) == 0 {
		return 0, false
	}
	n, ok := res[0].(int64)
	return n, ok
}
