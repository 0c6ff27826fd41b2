//! KIP-467 over the wire: a Produce batch refused for invalid records lists each one (its index in
//! the batch and why) in `record_errors`, with Kafka's `LogValidator` messages.

mod common;

use bytes::Bytes;
use common::{create_topic, name, BrokerProcess, Client};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const INVALID_RECORD: i16 = 87;

/// One batch whose record i has the key `keys[i]`.
fn keyed_batch(keys: &[Option<&str>], compression: Compression) -> Bytes {
    let records: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            vltava::log::plain_record(
                i as i64,
                1_700_000_000_000,
                k.map(|k| Bytes::from(k.to_string())),
                Some(Bytes::from(format!("v{i}"))),
            )
        })
        .collect();
    vltava::log::encode_batch(&records, compression)
        .unwrap()
        .freeze()
}

fn produce(c: &mut Client, version: i16, topic: &str, records: Bytes) -> PartitionProduceResponse {
    let td = TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records))]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let Some(ResponseKind::Produce(mut r)) = c.request(ApiKey::Produce, version, req) else {
        panic!("Produce v{version}")
    };
    r.responses.remove(0).partition_responses.remove(0)
}

#[test]
fn keyless_records_on_a_compacted_topic_are_listed_in_record_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut c = broker.connect();
    let r = create_topic(&mut c, 5, "compacted", 1, &[("cleanup.policy", "compact")]);
    assert_eq!(r.topics[0].error_code, 0);
    let why = "Compacted topic cannot accept message without key in topic partition compacted-0.";

    let keys = [None, Some("a"), None, None, Some("b"), None];
    for (v, compression) in [
        (8, Compression::None),
        (9, Compression::Gzip),
        (12, Compression::None),
    ] {
        let r = produce(&mut c, v, "compacted", keyed_batch(&keys, compression));
        assert_eq!(
            (r.error_code, r.base_offset, r.log_start_offset),
            (INVALID_RECORD, -1, 0),
            "v{v}"
        );
        let errors: Vec<(i32, Option<&str>)> = r
            .record_errors
            .iter()
            .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
            .collect();
        assert_eq!(
            errors,
            [
                (0, Some(why)),
                (2, Some(why)),
                (3, Some(why)),
                (5, Some(why))
            ],
            "v{v}"
        );
        let shown = format!("RecordError(batchIndex=0, message='{why}'), RecordError(batchIndex=2, message='{why}'), RecordError(batchIndex=3, message='{why}')");
        assert_eq!(
            r.error_message.as_deref(),
            Some(
                format!(
                    "One or more records have been rejected due to 4 record errors in total, and only showing the first three errors at most: [{shown}]"
                )
                .as_str()
            ),
            "v{v}"
        );
    }
    // Before v8 the response has no record errors; the code is the same.
    let r = produce(
        &mut c,
        7,
        "compacted",
        keyed_batch(&[None], Compression::None),
    );
    assert_eq!(r.error_code, INVALID_RECORD);

    // Nothing refused was written: a keyed batch lands at offset 0.
    let r = produce(
        &mut c,
        9,
        "compacted",
        keyed_batch(&[Some("k")], Compression::None),
    );
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert!(r.record_errors.is_empty());
}
