package main

import (
	"encoding/binary"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// checkFeature: the broker finalizes transaction.version 2 in ApiVersions (what franz-go's
// supportsKIP890p2 looks for), and a client that asks with a newer ApiVersions version than the
// broker knows learns it too (see checkApiVersionsDowngrade).
func checkFeature(e *txnEnv) {
	checkApiVersionsDowngrade(e.bootstrap)
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(e.ctx, e.admCl)
	if err != nil {
		fail("api versions: %v", err)
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" {
			if f.MaxVersionLevel < 2 {
				fail("transaction.version finalized at %d..%d, want 2", f.MinVersionLevel, f.MaxVersionLevel)
			}
			step("feature: transaction.version finalized at %d (ApiVersions v%d)", f.MaxVersionLevel, resp.Version)
			return
		}
	}
	fail("ApiVersions v%d finalizes no transaction.version (features %+v)", resp.Version, resp.FinalizedFeatures)
}

// apiVersionsProbe is the ApiVersions version franz-go v1.22.3 opens every new connection with
// (KIP-1242), unless it learned a lower maximum from the broker on an earlier connection.
const apiVersionsProbe = 5

// checkApiVersionsDowngrade sends ApiVersions v5 on a fresh connection. A broker that knows v5
// answers it; one that does not must answer as Kafka does since 2.4 (KIP-511): UNSUPPORTED_VERSION
// in the v0 shape with the ApiVersions range alone, so that the client retries with the highest
// version it names. franz-go reads an error answer listing every API as a pre-KIP-511 broker's
// final answer and keeps it: that connection then knows no finalized features, and a
// transaction begun on it runs Transactions V1 (kgo Client.supportsKIP890p2 is false).
func checkApiVersionsDowngrade(bootstrap string) {
	conn, err := net.DialTimeout("tcp", bootstrap, timeout)
	if err != nil {
		fail("dial %s: %v", bootstrap, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		fail("deadline: %v", err)
	}
	req := kmsg.NewApiVersionsRequest()
	req.Version = apiVersionsProbe
	req.ClientSoftwareName = "franz-compat"
	req.ClientSoftwareVersion = "1.0.0"
	const corrID = 7
	// Request header v2: key, version, correlation id, client id, no tagged fields.
	frame := binary.BigEndian.AppendUint16(make([]byte, 4, 64), uint16(kmsg.ApiVersions))
	frame = binary.BigEndian.AppendUint16(frame, apiVersionsProbe)
	frame = binary.BigEndian.AppendUint32(frame, corrID)
	frame = binary.BigEndian.AppendUint16(frame, uint16(len("franz-compat")))
	frame = append(frame, "franz-compat"...)
	frame = append(frame, 0)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := conn.Write(frame); err != nil {
		fail("write ApiVersions v%d: %v", apiVersionsProbe, err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		fail("ApiVersions v%d: no answer: %v", apiVersionsProbe, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil || len(body) < 6 {
		fail("ApiVersions v%d: short answer (%d bytes): %v", apiVersionsProbe, len(body), err)
	}
	if got := binary.BigEndian.Uint32(body); got != corrID {
		fail("ApiVersions v%d: correlation id %d, want %d", apiVersionsProbe, got, corrID)
	}
	body = body[4:] // the ApiVersions response header is always v0: the correlation id alone
	code := int16(binary.BigEndian.Uint16(body))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = apiVersionsProbe
	if code != 0 {
		resp.Version = 0
	}
	if err := resp.ReadFrom(body); err != nil {
		fail("ApiVersions v%d: answer (v%d shape, error %d) does not parse: %v", apiVersionsProbe, resp.Version, code, err)
	}
	switch {
	case code == 0:
		step("apiversions: v%d answered in full", apiVersionsProbe)
	case code != kerr.UnsupportedVersion.Code:
		fail("ApiVersions v%d: error %v", apiVersionsProbe, kerr.ErrorForCode(code))
	case len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != int16(kmsg.ApiVersions):
		fail("ApiVersions v%d: UNSUPPORTED_VERSION listing %d API ranges; Kafka (KIP-511) lists the ApiVersions range "+
			"alone, and franz-go takes a full list as final: that connection learns no finalized features and its "+
			"first transaction runs Transactions V1", apiVersionsProbe, len(resp.ApiKeys))
	default:
		step("apiversions: v%d answered UNSUPPORTED_VERSION naming ApiVersions v%d..v%d (KIP-511)", apiVersionsProbe,
			resp.ApiKeys[0].MinVersion, resp.ApiKeys[0].MaxVersion)
	}
}
