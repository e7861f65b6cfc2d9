//! Produce: validate and append each partition's batches; answer now (acks 0/1, and -1 while this
//! node is the only replica).

use super::{RequestContext, now_ms};
use crate::broker::Broker;
use crate::error::ErrorCode;
use crate::replica::Partition;
use bytes::BytesMut;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use strom_log::BatchHeader;

/// A transactional batch may only go to a partition its producer added to its open
/// transaction (AddPartitionsToTxn), and only from the producer's current epoch.
fn check_transactional(
    broker: &Broker,
    partition: &Partition,
    records: &[u8],
) -> Result<(), ErrorCode> {
    let Ok(header) = BatchHeader::parse(records) else {
        return Ok(()); // the log's validation answers malformed batches
    };
    if !header.is_transactional() {
        return Ok(());
    }
    broker.txn.partition_in_txn(
        header.producer_id,
        header.producer_epoch,
        &partition.topic,
        partition.index,
    )
}

/// `None` for acks=0: the client expects no response at all.
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext<'_>,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let uses_topic_ids = ctx.version >= 13;
    let valid_acks = matches!(acks, -1..=1);
    let image = broker.metadata.image();
    let now = now_ms();
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let topic_meta = if uses_topic_ids {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(&topic.name.0)
        };
        let missing_code = if uses_topic_ids {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let partition = topic_meta.and_then(|t| broker.replicas.get(&t.name, pd.index));
            let result = if !valid_acks {
                Err((ErrorCode::InvalidRequiredAcks.code(), None))
            } else if let Some(partition) = partition {
                match pd.records {
                    Some(records) => match check_transactional(broker, &partition, &records) {
                        Err(code) => Err((code.code(), None)),
                        Ok(()) => {
                            // The request buffer is shared and immutable; offsets are patched
                            // in a copy of the partition's batches (one memcpy, not per record).
                            let mut buf = BytesMut::from(&records[..]);
                            partition
                                .log
                                .append(&mut buf, partition.leader_epoch, now)
                                .map_err(|e| (e.kafka_error_code(), Some(e.to_string())))
                        }
                    },
                    None => Err((
                        ErrorCode::CorruptMessage.code(),
                        Some("no records".to_string()),
                    )),
                }
            } else {
                Err((missing_code.code(), None))
            };
            match result {
                Ok(info) => {
                    appended_any = true;
                    resp.base_offset = info.base_offset;
                    resp.log_append_time_ms = info.log_append_time;
                    resp.log_start_offset = info.log_start_offset;
                }
                Err((code, message)) => {
                    if let Some(m) = &message {
                        tracing::debug!(topic = %topic.name.0, partition = pd.index, error = %m, "produce rejected");
                    }
                    resp.error_code = code;
                    resp.error_message = message.map(StrBytes::from_string);
                }
            }
            partitions.push(resp);
        }
        let name = match (uses_topic_ids, topic_meta) {
            (true, Some(t)) => TopicName(StrBytes::from_string(t.name.clone())),
            _ => topic.name,
        };
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if appended_any {
        broker.notify_appended();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
