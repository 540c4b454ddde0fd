package backup

import (
	"testing"
	"time"
)

// TestContinuousWindows checks which instants a continuous point can be
// restored to, and from which pieces, around a gap and a retention cut.
func TestContinuousWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	pieces := []*Piece{
		{Seq: 0, Kind: PieceLog, PointID: "l0", From: at(0), To: at(10)},
		{Seq: 1, Kind: PieceBase, PointID: "b1", From: at(5), To: at(12)},
		{Seq: 2, Kind: PieceLog, PointID: "l2", From: at(10), To: at(20)},
		{Seq: 3, Kind: PieceLog, PointID: "l3", From: at(20), To: at(30)},
		{Seq: 4, Kind: PieceGap, From: at(30), To: at(31), Message: "lost"},
		{Seq: 5, Kind: PieceLog, PointID: "l5", From: at(30), To: at(40)},
		{Seq: 6, Kind: PieceBase, PointID: "b6", From: at(41), To: at(45)},
		{Seq: 7, Kind: PieceLog, PointID: "l7", From: at(40), To: at(50)},
	}
	st := &streamState{Windows: []Window{{Since: at(0), Until: at(30)}, {Since: at(35), Until: at(50)}}}
	ws := restorableWindows(pieces, st)
	want := []Window{{Since: at(12), Until: at(30)}, {Since: at(45), Until: at(50)}}
	if len(ws) != 2 || ws[0] != want[0] || ws[1] != want[1] {
		t.Fatalf("restorable windows %v, want %v", ws, want)
	}
	ids := func(ps []*Piece) (out []string) {
		for _, p := range ps {
			out = append(out, p.PointID)
		}
		return out
	}
	for _, c := range []struct {
		t    int
		want []string
	}{
		{12, []string{"b1", "l0", "l2"}}, // the base's WAL may start in l0
		{25, []string{"b1", "l0", "l2", "l3"}},
		{30, []string{"b1", "l0", "l2", "l3"}},
		{47, []string{"b6", "l5", "l7"}}, // l5, the last before the base began, too
	} {
		got, err := piecesFor(pieces, st, at(c.t))
		if err != nil {
			t.Fatalf("at %d: %v", c.t, err)
		}
		if g := ids(got); len(g) != len(c.want) || func() bool {
			for i := range g {
				if g[i] != c.want[i] {
					return true
				}
			}
			return false
		}() {
			t.Fatalf("pieces for %d: %v, want %v", c.t, g, c.want)
		}
	}
	for _, bad := range []int{11, 33, 40, 51} {
		if _, err := piecesFor(pieces, st, at(bad)); err == nil {
			t.Fatalf("restore to %d allowed, outside the windows", bad)
		}
	}
	// The retention keeps from 26 on: the first window is cut.
	st.Retained = at(26)
	ws = restorableWindows(pieces, st)
	if ws[0].Since != at(26) {
		t.Fatalf("window after the retention cut: %v", ws)
	}
	st.Retained = at(46)
	if ws = restorableWindows(pieces, st); len(ws) != 1 || ws[0].Since != at(46) {
		t.Fatalf("windows after a cut in the second: %v", ws)
	}
}
