package topology

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Connections between regions carry the bounds that end them when a
// partition leaves them waiting: a connection is cut StallTimeout after
// sent data goes unacknowledged or the peer falls silent, keepalive probes
// find the silence. (Dropping packets takes a network namespace: the
// partition test in cmd/bulwark shows the effect.)
func TestTransportBoundsStalledConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := NewTransport(nil).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for name, opt := range map[string]struct{ level, opt int }{
		"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
		"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
		"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
		"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
	} {
		var gerr error
		if err := raw.Control(func(fd uintptr) { got[name], gerr = unix.GetsockoptInt(int(fd), opt.level, opt.opt) }); err != nil || gerr != nil {
			t.Fatalf("%s: %v %v", name, err, gerr)
		}
	}
	want := map[string]int{
		"TCP_USER_TIMEOUT": int(StallTimeout.Milliseconds()),
		"SO_KEEPALIVE":     1,
		"TCP_KEEPIDLE":     int(keepAliveIdle.Seconds()),
		"TCP_KEEPINTVL":    int(keepAliveInterval.Seconds()),
		"TCP_KEEPCNT":      keepAliveProbes,
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %d, want %d", name, got[name], w)
		}
	}
}
