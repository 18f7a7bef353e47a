package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Connection says how to reach the Kafka brokers: their addresses and,
// optionally, TLS and SASL. The zero value of each field but Brokers means
// plaintext without authentication.
type Connection struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// TLS, if set, encrypts every connection.
	TLS *tls.Config
	// SASL, if set, authenticates every connection.
	SASL sasl.Mechanism
}

// Dialer returns a kafka-go Dialer for readers, consumer groups and
// direct connections.
func (c *Connection) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// Transport returns a kafka-go Transport for writers and clients.
func (c *Connection) Transport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: 10 * time.Second, TLS: c.TLS, SASL: c.SASL}
}

// Client returns a kafka-go Client for admin and metadata requests.
func (c *Connection) Client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: c.Transport()}
}

// maxBatchBytes bounds a produce batch below Kafka's default
// message.max.bytes of 1 MiB, leaving room for the batch framing.
const maxBatchBytes = 900 << 10

// Writer returns a synchronous Writer over this connection to topic, or to
// each message's topic when topic is empty, partitioning by the murmur2
// hash of the key like Java clients and waiting for all in-sync replicas.
// Its batches stay under Kafka's default message.max.bytes, which brokers
// apply to a whole produce batch. The caller closes it.
func (c *Connection) Writer(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Transport:    c.Transport(),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		BatchSize:    1000,
		BatchBytes:   maxBatchBytes,
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
}

// Dial connects to the first broker that answers.
func (c *Connection) Dial(ctx context.Context) (*kafka.Conn, error) {
	var errs []error
	for _, b := range c.Brokers {
		conn, err := c.Dialer().DialContext(ctx, "tcp", b)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("kafkaconn: connecting to %v: %w", c.Brokers, errors.Join(errs...))
}

// DialLeader connects to the leader of a partition of topic, looking it
// up through the first broker that answers.
func (c *Connection) DialLeader(ctx context.Context, topic string, partition int) (*kafka.Conn, error) {
	var errs []error
	for _, b := range c.Brokers {
		conn, err := c.Dialer().DialLeader(ctx, "tcp", b, topic, partition)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("kafkaconn: connecting to the leader of %s/%d: %w", topic, partition, errors.Join(errs...))
}

// Partitions returns the number of partitions of topic.
func (c *Connection) Partitions(ctx context.Context, topic string) (int, error) {
	meta, err := c.Client().Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("kafkaconn: reading metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, fmt.Errorf("kafkaconn: topic %s is missing", topic)
	}
	return len(meta.Topics[0].Partitions), nil
}

// ReaderConfig returns the configuration of a reader of one partition of
// topic, fetching up to 8 MiB at a time.
func (c *Connection) ReaderConfig(topic string, partition int) kafka.ReaderConfig {
	return kafka.ReaderConfig{Brokers: c.Brokers, Dialer: c.Dialer(), Topic: topic, Partition: partition,
		MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond}
}

// TransactionMarker reports whether m has the shape of a transaction
// marker (a commit or abort control record). kafka-go hands markers out as
// messages (segmentio/kafka-go#1332) and drops the batch attribute that
// marks them: a 4-byte key (version 0, type 0 or 1) and a 6-byte value
// (version 0, coordinator epoch), no headers. Any producer can write a
// data record of that shape, so a reader that must not lose data confirms
// the shape with the broker, as stream's fetcher does; backtest's topic
// replay skips such records on their shape alone.
func TransactionMarker(m *kafka.Message) bool {
	k, v := m.Key, m.Value
	return len(k) == 4 && k[0] == 0 && k[1] == 0 && k[2] == 0 && k[3] <= 1 &&
		len(v) == 6 && v[0] == 0 && v[1] == 0 && len(m.Headers) == 0
}

// SecurityConfig describes TLS and SASL settings as files and names, the
// way operators configure them.
type SecurityConfig struct {
	// TLS enables TLS; it is implied by any of the TLS files.
	TLS bool
	// CAFile is a PEM file of the CAs that sign the brokers' certificates;
	// the system pool is used when empty.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for
	// brokers that authenticate clients by certificate.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty
	// disables SASL.
	SASLMechanism string
	// Username is the SASL user.
	Username string
	// Password is the SASL password. It is never logged.
	Password string
}

// Build turns the settings into a Connection's TLS config and SASL
// mechanism.
func (s SecurityConfig) Build() (*tls.Config, sasl.Mechanism, error) {
	var tc *tls.Config
	if s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafkaconn: reading TLS CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("kafkaconn: TLS CA file %s holds no PEM certificate", s.CAFile)
			}
		}
		if (s.CertFile == "") != (s.KeyFile == "") {
			return nil, nil, errors.New("kafkaconn: a TLS client certificate needs both a certificate and a key file")
		}
		if s.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
			if err != nil {
				return nil, nil, fmt.Errorf("kafkaconn: loading TLS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	var mech sasl.Mechanism
	switch m := strings.ToUpper(s.SASLMechanism); m {
	case "":
	case "PLAIN":
		mech = plain.Mechanism{Username: s.Username, Password: s.Password}
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if m == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		var err error
		if mech, err = scram.Mechanism(algo, s.Username, s.Password); err != nil {
			return nil, nil, fmt.Errorf("kafkaconn: SASL %s: %w", m, err)
		}
	default:
		return nil, nil, fmt.Errorf("kafkaconn: SASL mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
	}
	if mech != nil && s.Username == "" {
		return nil, nil, errors.New("kafkaconn: SASL needs a username")
	}
	return tc, mech, nil
}
