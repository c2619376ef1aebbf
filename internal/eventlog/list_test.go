package eventlog

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestList(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		t0 := s.clock.Now()
		var all []string // oldest first
		for i, name := range []string{"a", "b", "a", "b", "a"} {
			if i > 0 {
				s.clock.Advance(time.Second)
			}
			all = append(all, appendLeased(t, l, "prod", s.far(), ev(name))...)
		}
		appendLeased(t, l, "dev", s.far(), ev("a"))
		newest := func(is ...int) []string {
			var out []string
			for _, i := range slices.Backward(is) {
				out = append(out, all[i])
			}
			return out
		}
		for _, c := range []struct {
			name string
			f    Filter
			want []string
		}{
			{"all", Filter{}, newest(0, 1, 2, 3, 4)},
			{"name", Filter{Name: "a"}, newest(0, 2, 4)},
			{"unknown name", Filter{Name: "zzz"}, nil},
			{"after is inclusive", Filter{After: t0.Add(2 * time.Second)}, newest(2, 3, 4)},
			{"before is exclusive", Filter{Before: t0.Add(2 * time.Second)}, newest(0, 1)},
			{"window", Filter{After: t0.Add(time.Second), Before: t0.Add(3 * time.Second)}, newest(1, 2)},
			{"window and name", Filter{Name: "b", After: t0.Add(time.Second), Before: t0.Add(3 * time.Second)}, newest(1)},
			{"limit", Filter{Limit: 2}, newest(3, 4)},
			{"cursor", Filter{Cursor: all[3], Limit: 2}, newest(1, 2)},
			{"cursor and name", Filter{Cursor: all[4], Name: "b"}, newest(1, 3)},
		} {
			got, err := l.List(ctx, "prod", c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Equal(ids(got), c.want) {
				t.Errorf("%s: List = %v, want %v", c.name, ids(got), c.want)
			}
		}
		if _, err := l.List(ctx, "prod", Filter{Cursor: newID()}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown cursor: %v, want ErrNotFound", err)
		}
		if _, err := l.List(ctx, "dev", Filter{Cursor: all[0]}); !errors.Is(err, ErrNotFound) {
			t.Errorf("cursor of another environment: %v, want ErrNotFound", err)
		}
	})
}

func TestListPaging(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		recs := make([]Record, 45)
		for i := range recs {
			recs[i] = ev("a")
		}
		want := ids(recs)
		slices.Reverse(want)
		appendLeased(t, l, "prod", s.far(), recs...)
		var got []string
		var sizes []int
		cursor := ""
		for {
			page, err := l.List(context.Background(), "prod", Filter{Cursor: cursor, Limit: 20})
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page))
			if len(page) == 0 {
				break
			}
			got = append(got, ids(page)...)
			cursor = page[len(page)-1].InternalID
		}
		if !slices.Equal(sizes, []int{20, 20, 5, 0}) || !slices.Equal(got, want) {
			t.Fatalf("pages of %v: %v, want every event once, newest first", sizes, got)
		}
	})
}

func TestListLimits(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		recs := make([]Record, 120)
		for i := range recs {
			recs[i] = ev("a")
		}
		appendLeased(t, l, "prod", s.far(), recs...)
		for limit, want := range map[int]int{0: 20, -1: 20, 7: 7, 100: 100, 500: 100} {
			got, err := l.List(context.Background(), "prod", Filter{Limit: limit})
			if err != nil || len(got) != want {
				t.Errorf("Limit %d: %d events, %v; want %d", limit, len(got), err, want)
			}
		}
	})
}

func TestExpire(t *testing.T) {
	each(t, func(t *testing.T, s *store) {
		l := s.open(t)
		ctx := context.Background()
		old := make([]Record, 250)
		for i := range old {
			old[i] = withClient(ev("a"), "c"+newID())
		}
		appendLeased(t, l, "prod", time.Time{}, old...)
		s.clock.Advance(time.Hour)
		cutoff := s.clock.Now()
		fresh := make([]Record, 10)
		for i := range fresh {
			fresh[i] = ev("a")
		}
		appendLeased(t, l, "dev", time.Time{}, fresh...)

		n, err := l.Expire(ctx, cutoff, 100)
		if err != nil || n != 250 {
			t.Fatalf("Expire = %d, %v; want 250", n, err)
		}
		if n := count(t, l); n != 10 {
			t.Fatalf("%d rows left, want the 10 fresh ones", n)
		}
		if n, err := l.Expire(ctx, cutoff, 100); err != nil || n != 0 {
			t.Fatalf("second Expire = %d, %v; want 0", n, err)
		}
		if _, err := l.Expire(ctx, cutoff, 0); err == nil {
			t.Fatal("Expire with batch 0: no error")
		}
		// An expired event's client id is free again.
		if out := mustAppend(t, l, "prod", withClient(ev("a"), old[0].ClientID)); !out[0].New {
			t.Fatalf("client id of a deleted event: %+v, want new", out)
		}
	})
}
