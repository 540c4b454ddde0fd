package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// network is two network namespaces, one per region, joined by a veth pair
// (the link between the regions) that a test cuts, slows down and heals.
// Each namespace has a second veth to the root namespace, where the test's
// clients run, so that the test reaches both regions whatever happens to
// the link between them.
//
//	root ns  <id>-0 10.78.X.1 ─── 10.78.X.2 cli0  ns <id>-0  wan0 10.77.0.1 ─┐
//	root ns  <id>-1 10.78.X.5 ─── 10.78.X.6 cli0  ns <id>-1  wan0 10.77.0.2 ─┘
type network struct {
	t  *testing.T
	ns [2]string
	// linkAddr is each namespace's address on the link between them;
	// clientAddr is where the root namespace reaches it.
	linkAddr, clientAddr [2]string
}

// The programs the link's ingress filter runs (classic BPF, in tc's
// bytecode notation, run in direct-action mode): drop every packet; drop
// one in ten, from the kernel's random number (SKF_AD_RANDOM). Packets are
// dropped where they arrive, not where they leave: a sender's own stack
// learns of a drop on its egress and gives up on the connection within
// seconds, which is not what a partition looks like.
const (
	dropAll   = "1,6 0 0 2"
	dropTenth = "4,32 0 0 4294963256,53 0 1 429496729,6 0 0 0,6 0 0 2"
)

// newNetwork makes the namespaces and links; they are removed when the
// test ends. Without root or network namespaces it skips the test, and
// fails it when CI=true, so that CI cannot pass without running it.
func newNetwork(t *testing.T) *network {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("partition test cannot run: %s", why)
		}
		t.Skipf("partition test needs root, iproute2 and network namespaces: %s", why)
	}
	if os.Geteuid() != 0 {
		unavailable("not root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(tool + " not found")
		}
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := "bwk" + hex.EncodeToString(b)
	subnet := freeSubnet(t)
	n := &network{t: t, ns: [2]string{id + "-0", id + "-1"}}
	for i := range 2 {
		if err := exec.Command("ip", "netns", "add", n.ns[i]).Run(); err != nil {
			unavailable(fmt.Sprintf("ip netns add: %v", err))
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns[i]).Run() })
		n.linkAddr[i] = fmt.Sprintf("10.77.0.%d", i+1)
		n.clientAddr[i] = fmt.Sprintf("%s.%d", subnet, 4*i+2)
		root := fmt.Sprintf("%s-%d", id, i)
		n.ip("link", "add", root, "type", "veth", "peer", "name", "cli0", "netns", n.ns[i])
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", root).Run() })
		n.ip("addr", "add", fmt.Sprintf("%s.%d/30", subnet, 4*i+1), "dev", root)
		n.ip("link", "set", root, "up")
		n.ip("-n", n.ns[i], "addr", "add", n.clientAddr[i]+"/30", "dev", "cli0")
		n.ip("-n", n.ns[i], "link", "set", "cli0", "up")
		n.ip("-n", n.ns[i], "link", "set", "lo", "up")
	}
	n.ip("-n", n.ns[0], "link", "add", "wan0", "type", "veth", "peer", "name", "wan0", "netns", n.ns[1])
	for i := range 2 {
		n.ip("-n", n.ns[i], "addr", "add", n.linkAddr[i]+"/24", "dev", "wan0")
		n.ip("-n", n.ns[i], "link", "set", "wan0", "up")
		if out, err := exec.Command("tc", "-n", n.ns[i], "qdisc", "add", "dev", "wan0", "clsact").CombinedOutput(); err != nil {
			unavailable(fmt.Sprintf("tc clsact: %v: %s", err, out))
		}
	}
	return n
}

// freeSubnet picks a 10.78.X.0/24 no address of the root namespace is in.
func freeSubnet(t *testing.T) string {
	out, err := exec.Command("ip", "-4", "-o", "addr").Output()
	if err != nil {
		t.Fatalf("ip addr: %v", err)
	}
	for {
		b := make([]byte, 1)
		_, _ = rand.Read(b)
		s := fmt.Sprintf("10.78.%d", b[0])
		if !strings.Contains(string(out), " "+s+".") {
			return s
		}
	}
}

func (n *network) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// tc runs tc on both ends of the link.
func (n *network) tc(args ...string) error {
	for _, ns := range n.ns {
		all := append([]string{"-n", ns}, args...)
		if out, err := exec.Command("tc", all...).CombinedOutput(); err != nil {
			return fmt.Errorf("tc %s: %v: %s", strings.Join(all, " "), err, out)
		}
	}
	return nil
}

func (n *network) mustTC(args ...string) {
	n.t.Helper()
	if err := n.tc(args...); err != nil {
		n.t.Fatal(err)
	}
}

// command is a command run in the i-th namespace.
func (n *network) command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.ns[i], name}, args...)...)
}

// cut drops every IPv4 packet on the link, both ways: a connection
// attempt gets no answer and open connections stall, as across a real
// partition (ARP still passes, so nothing fails early with "host
// unreachable").
func (n *network) cut() {
	n.heal()
	n.filter(dropAll)
}

// slow makes the link slow and lossy: 200 ms each way and 10% loss with
// netem where the kernel has it; else a 1 Mbit/s rate limit whose queue
// delays (up to a second), and the same loss from the filter.
func (n *network) slow() {
	n.heal()
	if n.tc("qdisc", "add", "dev", "wan0", "root", "netem", "delay", "200ms", "loss", "10%") == nil {
		return
	}
	n.heal()
	n.mustTC("qdisc", "add", "dev", "wan0", "root", "tbf", "rate", "1mbit", "burst", "32kb", "latency", "1s")
	n.filter(dropTenth)
}

// heal restores the link.
func (n *network) heal() {
	_ = n.tc("filter", "del", "dev", "wan0", "ingress")
	_ = n.tc("qdisc", "del", "dev", "wan0", "root")
}

func (n *network) filter(program string) {
	n.t.Helper()
	n.mustTC("filter", "add", "dev", "wan0", "ingress", "protocol", "ip", "bpf", "da", "bytecode", program)
}
