package k8stest

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// endpoint is one end of a connection: a pod (its namespace, the namespace's
// labels and its own) or, when external, an address outside the cluster. ip is
// its address; a pod without one has podIP.
type endpoint struct {
	namespace string
	nsLabels  map[string]string
	podLabels map[string]string
	external  bool
	ip        string
}

// podIP is the address of a pod endpoint that names none: in the pod network
// (10.244.0.0/16, a common default), outside every ipBlock the manifests use.
const podIP = "10.244.1.17"

// addr is the endpoint's address.
func (e endpoint) addr() netip.Addr {
	ip := e.ip
	if ip == "" && !e.external {
		ip = podIP
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		panic(fmt.Sprintf("endpoint %+v has no address", e))
	}
	return a
}

// connection is a TCP or UDP connection to a port.
type connection struct {
	from, to endpoint
	protocol corev1.Protocol
	port     int32
}

// policies evaluates NetworkPolicies the way the API defines them: a pod selected
// by no policy of a direction is open in that direction; a pod selected by some is
// open only to what one of their rules admits. Only what the deployment uses is
// understood (pod and namespace selectors, ipBlocks, numeric ports); a named port
// or an endPort fails the test rather than be guessed at. An ipBlock matches any
// address in it, a pod's too: the API leaves it to the network plugin whether pod
// traffic is matched by ipBlock, and the evaluator takes the permissive reading,
// so that a connection a test says is refused is refused by every plugin.
type policies struct {
	t    *testing.T
	list []*networkingv1.NetworkPolicy
}

// allows reports whether c is admitted both as the source's egress and as the
// destination's ingress (an external end has no policies of its own).
func (p policies) allows(c connection) bool {
	return p.admits(c.from, c.to, c, networkingv1.PolicyTypeEgress) &&
		p.admits(c.to, c.from, c, networkingv1.PolicyTypeIngress)
}

// admits reports whether the policies of pod let it reach or be reached by peer.
func (p policies) admits(pod, peer endpoint, c connection, direction networkingv1.PolicyType) bool {
	if pod.external {
		return true
	}
	selected := false
	for _, np := range p.list {
		if np.Namespace != pod.namespace || !hasType(np, direction) || !p.matches(np.Spec.PodSelector, pod.podLabels) {
			continue
		}
		selected = true
		if direction == networkingv1.PolicyTypeIngress {
			for _, rule := range np.Spec.Ingress {
				if p.peersMatch(np.Namespace, rule.From, peer) && p.portsMatch(rule.Ports, c) {
					return true
				}
			}
		} else {
			for _, rule := range np.Spec.Egress {
				if p.peersMatch(np.Namespace, rule.To, peer) && p.portsMatch(rule.Ports, c) {
					return true
				}
			}
		}
	}
	return !selected
}

func hasType(np *networkingv1.NetworkPolicy, want networkingv1.PolicyType) bool {
	types := np.Spec.PolicyTypes
	if len(types) == 0 { // the API's default: Ingress, and Egress when there are egress rules
		types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			types = append(types, networkingv1.PolicyTypeEgress)
		}
	}
	for _, t := range types {
		if t == want {
			return true
		}
	}
	return false
}

func (p policies) peersMatch(policyNamespace string, peers []networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if len(peers) == 0 {
		return true // every source or destination, in the cluster or not
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if p.inBlock(*peer.IPBlock, e.addr()) {
				return true
			}
			continue
		}
		if e.external {
			continue
		}
		nsOK := peer.NamespaceSelector == nil && e.namespace == policyNamespace ||
			peer.NamespaceSelector != nil && p.matches(*peer.NamespaceSelector, e.nsLabels)
		podOK := peer.PodSelector == nil || p.matches(*peer.PodSelector, e.podLabels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

// inBlock reports whether a is in the block's CIDR and in none of its exceptions.
func (p policies) inBlock(b networkingv1.IPBlock, a netip.Addr) bool {
	in := func(cidr string) bool {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			p.t.Fatalf("ipBlock %q: %v", cidr, err)
		}
		return prefix.Contains(a)
	}
	if !in(b.CIDR) {
		return false
	}
	for _, ex := range b.Except {
		if in(ex) {
			return false
		}
	}
	return true
}

func (p policies) portsMatch(ports []networkingv1.NetworkPolicyPort, c connection) bool {
	if len(ports) == 0 {
		return true
	}
	for _, port := range ports {
		protocol := corev1.ProtocolTCP
		if port.Protocol != nil {
			protocol = *port.Protocol
		}
		if port.Port == nil || port.Port.Type != 0 || port.EndPort != nil {
			p.t.Fatalf("the evaluator understands single numeric ports only, got %v", port)
		}
		if protocol == c.protocol && port.Port.IntVal == c.port {
			return true
		}
	}
	return false
}

func (p policies) matches(sel metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil {
		p.t.Fatalf("label selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(l))
}

func (c connection) String() string {
	name := func(e endpoint) string {
		if e.external {
			return "outside/" + e.ip
		}
		return fmt.Sprintf("%s/%v", e.namespace, e.podLabels)
	}
	return fmt.Sprintf("%s → %s %s/%d", name(c.from), name(c.to), c.protocol, c.port)
}

// TestPolicyEvaluator shows the evaluator the deployment tests rely on follows the
// API's rules on small policies of its own.
func TestPolicyEvaluator(t *testing.T) {
	t.Parallel()
	tcp := corev1.ProtocolTCP
	port := func(n int) []networkingv1.NetworkPolicyPort {
		v := intOrString(n)
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &v}}
	}
	a := endpoint{namespace: "ns", podLabels: map[string]string{"app": "a"}}
	b := endpoint{namespace: "ns", podLabels: map[string]string{"app": "b"}}
	other := endpoint{namespace: "other", nsLabels: map[string]string{"team": "x"}, podLabels: map[string]string{"app": "a"}}
	outside := endpoint{external: true, ip: "198.51.100.7"}
	db := endpoint{external: true, ip: "203.0.113.5"}
	dbReplica := endpoint{external: true, ip: "203.0.113.9"}

	open := policies{t: t}
	if !open.allows(connection{from: a, to: b, protocol: tcp, port: 80}) {
		t.Error("no policy at all must allow everything")
	}

	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress", "Egress"}}}
	bFromA := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
		PolicyTypes: []networkingv1.PolicyType{"Ingress"},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
			Ports: port(80),
		}},
	}}
	aOut := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}},
		PolicyTypes: []networkingv1.PolicyType{"Egress"},
		Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: port(80)}},
	}}
	bToDB := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "b"}},
		PolicyTypes: []networkingv1.PolicyType{"Egress"},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "203.0.113.0/28", Except: []string{"203.0.113.8/29"}}}},
			Ports: port(5432),
		}},
	}}
	p := policies{t: t, list: []*networkingv1.NetworkPolicy{deny, bFromA, aOut, bToDB}}
	tests := []expectation{
		{connection{from: a, to: b, protocol: tcp, port: 80}, true},
		{connection{from: a, to: b, protocol: tcp, port: 81}, false},                // port not admitted
		{connection{from: a, to: b, protocol: corev1.ProtocolUDP, port: 80}, false}, // protocol
		{connection{from: b, to: a, protocol: tcp, port: 80}, false},                // a admits nothing in
		{connection{from: other, to: b, protocol: tcp, port: 80}, false},            // b admits app=a of its own namespace only
		{connection{from: a, to: outside, protocol: tcp, port: 80}, true},           // egress by port only
		{connection{from: b, to: outside, protocol: tcp, port: 80}, false},          // b may send nothing
		{connection{from: outside, to: b, protocol: tcp, port: 80}, false},          // a pod selector never matches outside
		{connection{from: b, to: db, protocol: tcp, port: 5432}, true},              // in the block
		{connection{from: b, to: dbReplica, protocol: tcp, port: 5432}, false},      // in its exception
		{connection{from: b, to: outside, protocol: tcp, port: 5432}, false},        // outside the block
		{connection{from: b, to: db, protocol: tcp, port: 5433}, false},             // another port
		{connection{from: a, to: db, protocol: tcp, port: 5432}, false},             // a's rule is port 80 only
	}
	for _, tt := range tests {
		if got := p.allows(tt.c); got != tt.want {
			t.Errorf("%v: allowed %v, want %v", tt.c, got, tt.want)
		}
	}
}
