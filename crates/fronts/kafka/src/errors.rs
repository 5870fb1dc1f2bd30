//! The one place block errors become Kafka error codes.

use kafka_protocol::error::ResponseError as E;
use strata_stream::StreamError;
use strata_stream::groups::GroupError;

pub fn stream_code(err: &StreamError) -> i16 {
    let code = match err {
        StreamError::UnknownTopic(_) | StreamError::UnknownPartition { .. } => E::UnknownTopicOrPartition,
        StreamError::TopicExists(_) => E::TopicAlreadyExists,
        StreamError::InvalidTopic(_) => E::InvalidTopicException,
        StreamError::InvalidPartitions(_) => E::InvalidPartitions,
        StreamError::InvalidConfig(_) => E::InvalidConfig,
        StreamError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
        StreamError::Corrupt(_) => E::CorruptMessage,
        StreamError::UnsupportedFormat(_) => E::UnsupportedForMessageFormat,
        StreamError::TooLarge { .. } => E::MessageTooLarge,
        StreamError::OutOfOrderSequence => E::OutOfOrderSequenceNumber,
        StreamError::ProducerFenced => E::InvalidProducerEpoch,
        StreamError::Unsupported(_) => E::InvalidRequest,
        StreamError::Io(_) => E::KafkaStorageError,
        StreamError::Core(_) => E::UnknownServerError,
    };
    if matches!(code, E::KafkaStorageError | E::UnknownServerError) {
        tracing::error!(%err, "stream request failed");
    }
    code.code()
}

pub fn group_code(err: &GroupError) -> i16 {
    match err {
        GroupError::UnknownMember => E::UnknownMemberId,
        GroupError::IllegalGeneration => E::IllegalGeneration,
        GroupError::RebalanceInProgress => E::RebalanceInProgress,
        GroupError::MemberIdRequired(_) => E::MemberIdRequired,
        GroupError::InconsistentProtocol => E::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => E::InvalidSessionTimeout,
        GroupError::NotEmpty => E::NonEmptyGroup,
    }
    .code()
}
