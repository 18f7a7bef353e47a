package faultproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Mode says how FailProduce fails a produce request.
type Mode int

const (
	// Refuse answers the request with NOT_ENOUGH_REPLICAS, a retriable
	// error, without forwarding it: nothing is written.
	Refuse Mode = iota
	// Lose swallows the request and closes the connection without a
	// reply: nothing is written, and the client does not know it.
	Lose
	// Cut forwards the request, drops the broker's reply and closes the
	// connection: the records are written, and the client does not know it.
	Cut
)

func (m Mode) String() string {
	switch m {
	case Refuse:
		return "refuse"
	case Lose:
		return "lose"
	case Cut:
		return "cut"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// maxFrame bounds the size of a frame the proxy reads, far above any a
// test sends.
const maxFrame = 256 << 20

// maxProduceVersion is the highest Produce version the proxy lets clients
// use: later ones name topics by id only.
const maxProduceVersion = 12

// Proxy forwards Kafka connections to a cluster's brokers and injects
// faults into them. Create it with New; Close it when done.
type Proxy struct {
	mu        sync.Mutex
	listeners map[string]*listener // by broker address
	seeds     []*listener          // those of New's brokers, in order
	links     map[*link]struct{}
	thawed    chan struct{} // closed unless frozen
	delay     time.Duration
	faults    map[string][]*produceFault // by topic, oldest first
	maxRecord map[string]int             // by topic
	closed    bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type listener struct {
	ln       net.Listener
	upstream string
}

type produceFault struct {
	mode  Mode
	fired chan struct{}
}

// New starts a proxy with a listener for each of the brokers, the bootstrap
// addresses of a cluster. Listeners for brokers the cluster's metadata
// names later are added as clients learn of them.
func New(brokers ...string) (*Proxy, error) {
	if len(brokers) == 0 {
		return nil, errors.New("faultproxy: no broker address")
	}
	thawed := make(chan struct{})
	close(thawed)
	p := &Proxy{
		listeners: make(map[string]*listener),
		links:     make(map[*link]struct{}),
		thawed:    thawed,
		faults:    make(map[string][]*produceFault),
		maxRecord: make(map[string]int),
		done:      make(chan struct{}),
	}
	for _, b := range brokers {
		p.mu.Lock()
		l, err := p.listenLocked(b)
		if err == nil {
			p.seeds = append(p.seeds, l)
		}
		p.mu.Unlock()
		if err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Addrs returns the proxy's address for each broker New was given, in the
// same order.
func (p *Proxy) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.seeds))
	for _, l := range p.seeds {
		out = append(out, l.ln.Addr().String())
	}
	return out
}

// Addr returns the proxy's address for broker, and false when the proxy
// has no listener for it.
func (p *Proxy) Addr(broker string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.listeners[broker]
	if !ok {
		return "", false
	}
	return l.ln.Addr().String(), true
}

// listenLocked returns the listener for broker, starting it if needed.
func (p *Proxy) listenLocked(broker string) (*listener, error) {
	if l, ok := p.listeners[broker]; ok {
		return l, nil
	}
	if p.closed {
		return nil, errors.New("faultproxy: closed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening for broker %s: %w", broker, err)
	}
	l := &listener{ln: ln, upstream: broker}
	p.listeners[broker] = l
	p.wg.Go(func() { p.accept(l) })
	return l, nil
}

// accept serves l's connections until l is closed.
func (p *Proxy) accept(l *listener) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", l.upstream, 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		k := &link{p: p, client: c, upstream: up, closed: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			k.close()
			return
		}
		p.links[k] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go func() { defer p.wg.Done(); k.requests() }()
		go func() { defer p.wg.Done(); k.responses() }()
	}
}

// Close stops every listener, closes every connection and waits for the
// proxy's goroutines to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	for _, l := range p.listeners {
		l.ln.Close()
	}
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, k := range links {
		k.close()
	}
	p.wg.Wait()
	return nil
}

func (p *Proxy) takeLinksLocked() []*link {
	links := make([]*link, 0, len(p.links))
	for k := range p.links {
		links = append(links, k)
	}
	clear(p.links)
	return links
}

// Freeze stops forwarding in both directions until Thaw. Connections stay
// open and new ones are accepted, but nothing passes.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default:
	}
}

// Thaw resumes forwarding after Freeze.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// SetDelay holds every request back for d before forwarding it; 0 turns
// the delay off.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// Reset closes every open connection. Clients reconnect through the
// listeners, which stay open.
func (p *Proxy) Reset() {
	p.mu.Lock()
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, k := range links {
		k.close()
	}
}

// FailProduce makes the next produce request that writes to topic fail in
// the given mode; calls queue up, one request each. The returned channel
// is closed once the fault has been applied.
func (p *Proxy) FailProduce(topic string, mode Mode) <-chan struct{} {
	f := &produceFault{mode: mode, fired: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[topic] = append(p.faults[topic], f)
	return f.fired
}

// CapMessageSize answers every produce request holding a record for
// topic larger than n bytes (its encoded size; a compressed batch counts
// as a whole), as a broker does whose max.message.bytes for topic is n:
// with MESSAGE_TOO_LARGE for the partitions of topic holding one, and
// NOT_ENOUGH_REPLICAS, which clients retry, for the request's other
// partitions. Nothing of such a request is written. n <= 0 removes the
// cap.
func (p *Proxy) CapMessageSize(topic string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n <= 0 {
		delete(p.maxRecord, topic)
		return
	}
	p.maxRecord[topic] = n
}

// gate waits until forwarding is allowed, and reports false when the
// proxy or the link closed first.
func (p *Proxy) gate(k *link, delay bool) bool {
	p.mu.Lock()
	thawed, d := p.thawed, p.delay
	p.mu.Unlock()
	select {
	case <-thawed:
	case <-k.closed:
		return false
	}
	if delay && d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-k.closed:
			return false
		}
		// A freeze that began during the delay holds the request too.
		return p.gate(k, false)
	}
	return true
}

// produceAction decides what happens to a produce request: nil to forward
// it unchanged, or the fault to apply. For Refuse and capped requests it
// also returns the error code of each partition for the synthetic answer.
func (p *Proxy) produceAction(req *kmsg.ProduceRequest) (f *produceFault, codes map[string]map[int32]int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.maxRecord) > 0 {
		codes = make(map[string]map[int32]int16)
		over := false
		for _, t := range req.Topics {
			codes[t.Topic] = make(map[int32]int16)
			for _, part := range t.Partitions {
				code := kerr.NotEnoughReplicas.Code
				if limit := p.maxRecord[t.Topic]; limit > 0 && largestRecord(part.Records) > limit {
					code, over = kerr.MessageTooLarge.Code, true
				}
				codes[t.Topic][part.Partition] = code
			}
		}
		if over {
			return &produceFault{mode: Refuse}, codes
		}
		codes = nil
	}
	for _, t := range req.Topics {
		q := p.faults[t.Topic]
		if len(q) == 0 {
			continue
		}
		f, p.faults[t.Topic] = q[0], q[1:]
		if f.mode == Refuse {
			codes = make(map[string]map[int32]int16)
			for _, t := range req.Topics {
				codes[t.Topic] = make(map[int32]int16)
				for _, part := range t.Partitions {
					codes[t.Topic][part.Partition] = kerr.NotEnoughReplicas.Code
				}
			}
		}
		return f, codes
	}
	return nil, nil
}

// proxyAddr returns the proxy's host and port for a broker the cluster
// advertises, starting a listener for it when needed.
func (p *Proxy) proxyAddr(host string, port int32) (string, int32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, err := p.listenLocked(net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return "", 0, false
	}
	a := l.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), int32(a.Port), true
}

// largestRecord returns the encoded size of the largest record in a
// produce request's record batches; a compressed batch counts as one
// record of its size.
func largestRecord(records []byte) int {
	largest := 0
	for len(records) >= 12 {
		n := int(int32(binary.BigEndian.Uint32(records[8:12]))) + 12
		if n < 12 || n > len(records) {
			return len(records)
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(records[:n]); err != nil || b.Magic != 2 || b.Attributes&0x07 != 0 {
			largest = max(largest, n)
		} else {
			largest = max(largest, largestInBatch(b.Records, int(b.NumRecords)))
		}
		records = records[n:]
	}
	return largest
}

// largestInBatch returns the size of the largest of the n varint-length
// prefixed records in raw.
func largestInBatch(raw []byte, n int) int {
	largest := 0
	for range n {
		size, used := binary.Varint(raw)
		if used <= 0 || size < 0 || int(size) > len(raw)-used {
			return max(largest, len(raw))
		}
		largest = max(largest, int(size))
		raw = raw[used+int(size):]
	}
	return largest
}

// link is one proxied connection: a client's and the proxy's to the
// broker.
type link struct {
	p                *Proxy
	client, upstream net.Conn

	mu      sync.Mutex // guards pending and writes to client
	pending []pending  // requests awaiting an answer, in order

	closeOnce sync.Once
	closed    chan struct{}
}

// pending is a request forwarded or answered by the proxy, awaiting its
// turn to be answered: Kafka answers a connection's requests in order.
type pending struct {
	corr    int32
	key     int16
	version int16
	synth   []byte // the proxy's own answer, when it does not forward
	cut     *produceFault
}

func (k *link) close() {
	k.closeOnce.Do(func() {
		close(k.closed)
		k.client.Close()
		k.upstream.Close()
		k.p.mu.Lock()
		delete(k.p.links, k)
		k.p.mu.Unlock()
	})
}

// requests forwards the client's requests until either side closes.
func (k *link) requests() {
	defer k.close()
	for {
		frame, err := readFrame(k.client)
		if err != nil {
			return
		}
		if !k.p.gate(k, true) {
			return
		}
		h, err := parseRequestHeader(frame)
		if err != nil {
			return
		}
		pend := pending{corr: h.corr, key: h.key, version: h.version}
		if h.key == kmsg.Produce.Int16() {
			req := &kmsg.ProduceRequest{Version: h.version}
			if err := req.ReadFrom(frame[h.bodyAt:]); err == nil {
				f, codes := k.p.produceAction(req)
				if f != nil {
					switch f.mode {
					case Refuse:
						pend.synth = produceAnswer(req, h.corr, codes)
					case Lose:
						f.fire()
						return
					case Cut:
						pend.cut = f
					}
				}
				if req.Acks == 0 {
					// No answer comes; a broker refusing such a request
					// closes the connection.
					if pend.synth != nil || pend.cut != nil {
						if pend.cut != nil {
							k.upstream.Write(frame)
						}
						if f != nil {
							f.fire()
						}
						return
					}
					if _, err := k.upstream.Write(frame); err != nil {
						return
					}
					continue
				}
				if pend.synth != nil {
					if !k.answer(pend) {
						return
					}
					if f != nil {
						f.fire()
					}
					continue
				}
			}
		}
		k.mu.Lock()
		k.pending = append(k.pending, pend)
		k.mu.Unlock()
		if _, err := k.upstream.Write(frame); err != nil {
			return
		}
	}
}

// answer queues the proxy's own answer behind the requests still awaiting
// the broker's, or writes it at once when none are.
func (k *link) answer(pend pending) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pending) > 0 {
		k.pending = append(k.pending, pend)
		return true
	}
	_, err := k.client.Write(pend.synth)
	return err == nil
}

// responses forwards the broker's answers, rewritten where needed, until
// either side closes.
func (k *link) responses() {
	defer k.close()
	for {
		frame, err := readFrame(k.upstream)
		if err != nil {
			return
		}
		if !k.p.gate(k, false) {
			return
		}
		if len(frame) < 8 {
			return
		}
		corr := int32(binary.BigEndian.Uint32(frame[4:8]))
		k.mu.Lock()
		if len(k.pending) == 0 || k.pending[0].corr != corr {
			k.mu.Unlock()
			return // out of step: cut rather than guess
		}
		pend := k.pending[0]
		k.pending = k.pending[1:]
		k.mu.Unlock()
		if pend.cut != nil {
			pend.cut.fire()
			return
		}
		frame = k.p.rewrite(pend, frame)
		if !k.write(frame) {
			return
		}
	}
}

// write writes a broker's answer and then the proxy's own answers queued
// behind it.
func (k *link) write(frame []byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, err := k.client.Write(frame); err != nil {
		return false
	}
	for len(k.pending) > 0 && k.pending[0].synth != nil {
		if _, err := k.client.Write(k.pending[0].synth); err != nil {
			return false
		}
		k.pending = k.pending[1:]
	}
	return true
}

func (f *produceFault) fire() {
	if f.fired != nil {
		close(f.fired)
	}
}

// readFrame reads one size-prefixed frame, prefix included.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxFrame {
		return nil, fmt.Errorf("faultproxy: frame of %d bytes", n)
	}
	frame := make([]byte, 4+n)
	copy(frame, size[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

type requestHeader struct {
	key, version int16
	corr         int32
	bodyAt       int // offset of the body in the frame
}

// parseRequestHeader reads a request frame's header: API key, version,
// correlation id, client id and, for flexible versions, tagged fields.
func parseRequestHeader(frame []byte) (requestHeader, error) {
	var h requestHeader
	if len(frame) < 14 {
		return h, errors.New("faultproxy: short request")
	}
	h.key = int16(binary.BigEndian.Uint16(frame[4:6]))
	h.version = int16(binary.BigEndian.Uint16(frame[6:8]))
	h.corr = int32(binary.BigEndian.Uint32(frame[8:12]))
	at := 14
	if n := int16(binary.BigEndian.Uint16(frame[12:14])); n > 0 {
		at += int(n)
	}
	if at > len(frame) {
		return h, errors.New("faultproxy: short request header")
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, fmt.Errorf("faultproxy: unknown API key %d", h.key)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		n, err := skipTags(frame[at:])
		if err != nil {
			return h, err
		}
		at += n
	}
	h.bodyAt = at
	return h, nil
}

// skipTags returns the length of the tagged fields at the start of b.
func skipTags(b []byte) (int, error) {
	count, at := binary.Uvarint(b)
	if at <= 0 {
		return 0, errors.New("faultproxy: bad tagged fields")
	}
	for range count {
		_, n := binary.Uvarint(b[at:])
		if n <= 0 {
			return 0, errors.New("faultproxy: bad tag")
		}
		at += n
		size, n := binary.Uvarint(b[at:])
		if n <= 0 || int(size) > len(b)-at-n {
			return 0, errors.New("faultproxy: bad tag size")
		}
		at += n + int(size)
	}
	return at, nil
}

// responseHeaderSize returns the size of the header (after the size
// prefix) of a response to the given request, and whether the response
// kind is known.
func responseHeaderSize(key, version int16, frame []byte) int {
	if key == kmsg.ApiVersions.Int16() {
		return 4 // ApiVersions answers always use header v0
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if !req.IsFlexible() {
		return 4
	}
	n, err := skipTags(frame[8:])
	if err != nil {
		return -1
	}
	return 4 + n
}

// rewrite returns the broker's answer to pend with broker addresses
// replaced by the proxy's and the Produce API capped; other answers
// unchanged.
func (p *Proxy) rewrite(pend pending, frame []byte) []byte {
	var resp kmsg.Response
	switch pend.key {
	case kmsg.Metadata.Int16(), kmsg.FindCoordinator.Int16(), kmsg.ApiVersions.Int16():
		resp = kmsg.ResponseForKey(pend.key)
	default:
		return frame
	}
	resp.SetVersion(pend.version)
	hs := responseHeaderSize(pend.key, pend.version, frame)
	if hs < 0 {
		return frame
	}
	if err := resp.ReadFrom(frame[4+hs:]); err != nil {
		return frame
	}
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range r.Brokers {
			b := &r.Brokers[i]
			if host, port, ok := p.proxyAddr(b.Host, b.Port); ok {
				b.Host, b.Port = host, port
			}
		}
	case *kmsg.FindCoordinatorResponse:
		if r.Host != "" {
			if host, port, ok := p.proxyAddr(r.Host, r.Port); ok {
				r.Host, r.Port = host, port
			}
		}
		for i := range r.Coordinators {
			c := &r.Coordinators[i]
			if c.Host == "" {
				continue
			}
			if host, port, ok := p.proxyAddr(c.Host, c.Port); ok {
				c.Host, c.Port = host, port
			}
		}
	case *kmsg.ApiVersionsResponse:
		for i := range r.ApiKeys {
			if k := &r.ApiKeys[i]; k.ApiKey == kmsg.Produce.Int16() && k.MaxVersion > maxProduceVersion {
				k.MaxVersion = maxProduceVersion
			}
		}
	}
	out := make([]byte, 4, len(frame)+64)
	out = append(out, frame[4:4+hs]...)
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-4))
	return out
}

// produceAnswer builds the answer frame to a produce request with an error
// code for each partition.
func produceAnswer(req *kmsg.ProduceRequest, corr int32, codes map[string]map[int32]int16) []byte {
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = req.Version
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, part := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = part.Partition
			rp.ErrorCode = codes[t.Topic][part.Partition]
			rp.BaseOffset = -1
			rp.LogAppendTime = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	out := make([]byte, 8, 64)
	binary.BigEndian.PutUint32(out[4:8], uint32(corr))
	if req.IsFlexible() {
		out = append(out, 0) // no tagged fields in the header
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out[:4], uint32(len(out)-4))
	return out
}
