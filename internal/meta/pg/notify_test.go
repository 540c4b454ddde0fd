package pg

import (
	"context"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
)

// TestNotifyAcrossStores has one store notify a channel another listens
// on, as two gateways of a region do; a channel nobody notifies stays
// quiet once the listener is set up.
func TestNotifyAcrossStores(t *testing.T) {
	dsn := pgtest.Database(t)
	ctx := context.Background()
	a, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nb := b.NewNotifier(nil)
	feed, other := nb.Subscribe("bulwark_feed"), nb.Subscribe("bulwark_other")
	nb.Start()
	defer nb.Close(ctx)
	// Listening begins with a wake of every subscriber: whatever was sent
	// before is lost, so they look again.
	for _, c := range []<-chan struct{}{feed, other} {
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatal("no wake when listening began")
		}
	}
	na := a.NewNotifier(nil)
	for range 3 {
		if err := na.Notify(ctx, "bulwark_feed"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-feed:
		case <-time.After(30 * time.Second):
			t.Fatal("a notification from another store never arrived")
		}
	}
	select {
	case <-other:
		t.Fatal("a channel nobody notified was woken")
	default:
	}
}
