//! Admin APIs over the wire against the real binary: DescribeConfigs for topics and the broker.

mod common;

use common::{create_topic, BrokerProcess, Client};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn describe(
    c: &mut Client,
    v: i16,
    resources: &[(i8, &str, Option<&[&str]>)],
    synonyms: bool,
) -> Vec<DescribeConfigsResult> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(synonyms)
        .with_resources(
            resources
                .iter()
                .map(|(t, n, keys)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(*t)
                        .with_resource_name(s(n))
                        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
                })
                .collect(),
        );
    match c.request(ApiKey::DescribeConfigs, v, req) {
        Some(ResponseKind::DescribeConfigs(r)) => r.results,
        other => panic!("DescribeConfigs v{v}: {other:?}"),
    }
}

/// (value, source, read_only, type) of one config of a result.
fn config(r: &DescribeConfigsResult, name: &str) -> (String, i8, bool, i8) {
    let e = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    let value = e.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
    (value, e.config_source, e.read_only, e.config_type)
}

#[test]
fn describe_configs_reports_topic_overrides_defaults_and_broker_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broker.toml");
    std::fs::write(&cfg, "num_partitions = 3\n[log]\nsegment_bytes = 1048576\n").unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data, &["--config", cfg.to_str().unwrap()]);
    let mut c = broker.connect();
    let r = create_topic(&mut c, 7, "configured", 1, &[("retention.ms", "1000")]);
    assert_eq!(r.topics[0].error_code, 0);
    // CreateTopics answers the same sources DescribeConfigs reports.
    let created = r.topics[0].configs.as_ref().unwrap();
    let seg = created
        .iter()
        .find(|e| e.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(seg.config_source, SOURCE_STATIC_BROKER);

    let (first, last) = vltava::handlers::lookup(ApiKey::DescribeConfigs as i16)
        .map(|a| (a.min_version, a.max_version))
        .unwrap();
    assert_eq!((first, last), (1, 4));
    for v in first..=last {
        let results = describe(
            &mut c,
            v,
            &[
                (TOPIC, "configured", None),
                (
                    TOPIC,
                    "configured",
                    Some(&["cleanup.policy", "no.such.config"]),
                ),
                (TOPIC, "missing", None),
                (TOPIC, "bad/name", None),
                (BROKER, "1", None),
                (BROKER, "", None),
                (BROKER, "7", None),
            ],
            false,
        );
        assert_eq!(results.len(), 7, "v{v}");
        let all = &results[0];
        assert_eq!(all.error_code, 0);
        assert_eq!(
            (all.resource_type, all.resource_name.as_str()),
            (TOPIC, "configured")
        );
        let (value, source, read_only, ty) = config(all, "retention.ms");
        assert_eq!(
            (value.as_str(), source, read_only),
            ("1000", SOURCE_TOPIC, false),
            "v{v}"
        );
        // ConfigType exists from v3 on.
        assert_eq!(ty, if v >= 3 { TYPE_LONG } else { 0 }, "v{v}");
        let (value, source, _, _) = config(all, "segment.bytes");
        assert_eq!((value.as_str(), source), ("1048576", SOURCE_STATIC_BROKER));
        let (value, source, _, ty) = config(all, "cleanup.policy");
        assert_eq!((value.as_str(), source), ("delete", SOURCE_DEFAULT));
        assert_eq!(ty, if v >= 3 { TYPE_LIST } else { 0 });
        assert!(all.configs.iter().all(|e| e.synonyms.is_empty()));

        let names: Vec<&str> = results[1].configs.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["cleanup.policy"], "only the keys asked for");
        assert_eq!(results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(results[3].error_code, INVALID_TOPIC_EXCEPTION);

        let b = &results[4];
        assert_eq!(b.error_code, 0);
        let (value, source, read_only, _) = config(b, "num.partitions");
        assert_eq!(
            (value.as_str(), source, read_only),
            ("3", SOURCE_STATIC_BROKER, true)
        );
        let (value, source, _, _) = config(b, "log.retention.ms");
        assert_eq!((value.as_str(), source), ("604800000", SOURCE_DEFAULT));
        let (value, _, _, _) = config(b, "advertised.listeners");
        assert_eq!(value, format!("PLAINTEXT://{}", broker.addr));
        assert_eq!((results[5].error_code, results[5].configs.len()), (0, 0));
        assert_eq!(results[6].error_code, INVALID_REQUEST);
    }

    // Synonyms, most specific first, when asked for.
    let r = describe(
        &mut c,
        4,
        &[(
            TOPIC,
            "configured",
            Some(&["retention.ms", "segment.bytes"]),
        )],
        true,
    );
    let synonyms = |name: &str| -> Vec<(String, i8)> {
        r[0].configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .unwrap()
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect()
    };
    assert_eq!(
        synonyms("retention.ms"),
        [
            ("retention.ms".to_string(), SOURCE_TOPIC),
            ("log.retention.ms".to_string(), SOURCE_DEFAULT)
        ]
    );
    assert_eq!(
        synonyms("segment.bytes"),
        [
            ("log.segment.bytes".to_string(), SOURCE_STATIC_BROKER),
            ("log.segment.bytes".to_string(), SOURCE_DEFAULT)
        ]
    );
}
