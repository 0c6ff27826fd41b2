//! DeleteTopics (key 20): by name (v1+) or by topic id (v6); the Raft write, then the data goes from disk.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{HandlerResult, RequestContext};

pub const VERSIONS: (i16, i16) = (1, 6);

pub async fn handle(ctx: RequestContext, req: DeleteTopicsRequest) -> HandlerResult {
    let broker = &ctx.broker;
    // v0-5 name topics in `topic_names`; v6 uses `topics` with a name or an id.
    let targets: Vec<(Option<String>, Uuid)> = if ctx.api_version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let image = broker.metadata.image();
        let resolved = match &name {
            Some(n) => image.topics.get(n).map(|t| (t.name.clone(), t.id)),
            None => image.topic_by_id(&id).map(|t| (t.name.clone(), t.id)),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        let result = match resolved {
            None => {
                let code = if name.is_none() {
                    ResponseError::UnknownTopicId.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                result.with_error_code(code)
            }
            Some((topic, topic_id)) => {
                let result = result
                    .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))
                    .with_topic_id(topic_id);
                match broker.delete_topic(&topic).await {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                }
            }
        };
        responses.push(result);
    }
    Ok(Some(
        DeleteTopicsResponse::default()
            .with_responses(responses)
            .into(),
    ))
}
