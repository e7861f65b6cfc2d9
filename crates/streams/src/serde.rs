//! Serdes: how typed keys and values become bytes on topics and in stores. The byte layouts are
//! Kafka's (StringSerializer = UTF-8, IntegerSerializer/LongSerializer = big-endian, windowed keys as
//! TimeWindowedSerializer / SessionWindowedSerializer write them) so Java applications read our topics.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::SerdeError;
use crate::record::Dyn;
use crate::window::{Window, Windowed};

/// Kafka's `Serde<T>`: a serializer and deserializer pair. Nulls never reach a serde: a null key or
/// value stays `None` on the record.
pub trait Serde<T>: Send + Sync {
    fn serialize(&self, topic: &str, value: &T) -> Result<Vec<u8>, SerdeError>;
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<T, SerdeError>;
    /// The bytes a sink's default partitioner hashes instead of the serialized key, if any.
    /// Windowed keys are partitioned by their base key alone (Kafka's WindowedStreamPartitioner),
    /// so every window of a key lands in the key's partition.
    fn partition_bytes(&self, _topic: &str, _value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(None)
    }
}

/// A shared serde for `T`.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Kafka's `Serdes` factory.
pub struct Serdes;

impl Serdes {
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    pub fn bytes() -> SerdeRef<Vec<u8>> {
        Arc::new(BytesSerde)
    }
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(I32Serde)
    }
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(F64Serde)
    }
    pub fn json<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>()
    -> SerdeRef<T> {
        Arc::new(JsonSerde::<T>(PhantomData))
    }
    /// Kafka's `WindowedSerdes.timeWindowedSerdeFrom(K, windowSize)`.
    pub fn time_windowed<K: Send + Sync + 'static>(
        inner: SerdeRef<K>,
        window_size_ms: i64,
    ) -> SerdeRef<Windowed<K>> {
        Arc::new(TimeWindowedSerde {
            inner,
            window_size_ms,
        })
    }
    /// Kafka's `WindowedSerdes.sessionWindowedSerdeFrom(K)`.
    pub fn session_windowed<K: Send + Sync + 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
        Arc::new(SessionWindowedSerde { inner })
    }
}

pub struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, _: &str, v: &String) -> Result<Vec<u8>, SerdeError> {
        Ok(v.as_bytes().to_vec())
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<String, SerdeError> {
        String::from_utf8(d.to_vec()).map_err(|e| SerdeError::new(topic, format!("not UTF-8: {e}")))
    }
}

pub struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, _: &str, v: &Vec<u8>) -> Result<Vec<u8>, SerdeError> {
        Ok(v.clone())
    }
    fn deserialize(&self, _: &str, d: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(d.to_vec())
    }
}

fn fixed<const N: usize>(topic: &str, d: &[u8], what: &str) -> Result<[u8; N], SerdeError> {
    d.try_into().map_err(|_| {
        SerdeError::new(
            topic,
            format!(
                "Size of data received by {what} is not {N} (got {})",
                d.len()
            ),
        )
    })
}

pub struct I32Serde;
impl Serde<i32> for I32Serde {
    fn serialize(&self, _: &str, v: &i32) -> Result<Vec<u8>, SerdeError> {
        Ok(v.to_be_bytes().to_vec())
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<i32, SerdeError> {
        Ok(i32::from_be_bytes(fixed::<4>(
            topic,
            d,
            "IntegerDeserializer",
        )?))
    }
}

pub struct I64Serde;
impl Serde<i64> for I64Serde {
    fn serialize(&self, _: &str, v: &i64) -> Result<Vec<u8>, SerdeError> {
        Ok(v.to_be_bytes().to_vec())
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<i64, SerdeError> {
        Ok(i64::from_be_bytes(fixed::<8>(
            topic,
            d,
            "LongDeserializer",
        )?))
    }
}

pub struct F64Serde;
impl Serde<f64> for F64Serde {
    fn serialize(&self, _: &str, v: &f64) -> Result<Vec<u8>, SerdeError> {
        Ok(v.to_bits().to_be_bytes().to_vec())
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<f64, SerdeError> {
        Ok(f64::from_bits(u64::from_be_bytes(fixed::<8>(
            topic,
            d,
            "DoubleDeserializer",
        )?)))
    }
}

pub struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T: serde::Serialize + serde::de::DeserializeOwned> Serde<T> for JsonSerde<T> {
    fn serialize(&self, topic: &str, v: &T) -> Result<Vec<u8>, SerdeError> {
        serde_json::to_vec(v).map_err(|e| SerdeError::new(topic, format!("JSON: {e}")))
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(d).map_err(|e| SerdeError::new(topic, format!("JSON: {e}")))
    }
}

/// Kafka's TimeWindowedSerializer: the key's bytes followed by the window start as 8 big-endian bytes.
pub struct TimeWindowedSerde<K> {
    inner: SerdeRef<K>,
    window_size_ms: i64,
}
impl<K> Serde<Windowed<K>> for TimeWindowedSerde<K> {
    fn serialize(&self, topic: &str, v: &Windowed<K>) -> Result<Vec<u8>, SerdeError> {
        let mut b = self.inner.serialize(topic, &v.key)?;
        b.extend_from_slice(&v.window.start.to_be_bytes());
        Ok(b)
    }
    fn partition_bytes(&self, topic: &str, v: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        self.inner.serialize(topic, &v.key).map(Some)
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if d.len() < 8 {
            return Err(SerdeError::new(topic, "windowed key shorter than 8 bytes"));
        }
        let (k, ts) = d.split_at(d.len() - 8);
        let start = i64::from_be_bytes(fixed::<8>(topic, ts, "TimeWindowedDeserializer")?);
        Ok(Windowed {
            key: self.inner.deserialize(topic, k)?,
            window: Window::new(start, start.saturating_add(self.window_size_ms)),
        })
    }
}

/// Kafka's SessionWindowedSerializer: key bytes, then window end, then window start (8 bytes each).
pub struct SessionWindowedSerde<K> {
    inner: SerdeRef<K>,
}
impl<K> Serde<Windowed<K>> for SessionWindowedSerde<K> {
    fn serialize(&self, topic: &str, v: &Windowed<K>) -> Result<Vec<u8>, SerdeError> {
        let mut b = self.inner.serialize(topic, &v.key)?;
        b.extend_from_slice(&v.window.end.to_be_bytes());
        b.extend_from_slice(&v.window.start.to_be_bytes());
        Ok(b)
    }
    fn partition_bytes(&self, topic: &str, v: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        self.inner.serialize(topic, &v.key).map(Some)
    }
    fn deserialize(&self, topic: &str, d: &[u8]) -> Result<Windowed<K>, SerdeError> {
        if d.len() < 16 {
            return Err(SerdeError::new(topic, "session key shorter than 16 bytes"));
        }
        let (k, rest) = d.split_at(d.len() - 16);
        let end = i64::from_be_bytes(fixed::<8>(
            topic,
            &rest[..8],
            "SessionWindowedDeserializer",
        )?);
        let start = i64::from_be_bytes(fixed::<8>(
            topic,
            &rest[8..],
            "SessionWindowedDeserializer",
        )?);
        Ok(Windowed {
            key: self.inner.deserialize(topic, k)?,
            window: Window::new(start, end),
        })
    }
}

/// A serde with its type erased, as the processor graph needs it.
#[derive(Clone)]
pub struct ErasedSerde {
    pub ser: Arc<dyn Fn(&str, &Dyn) -> Result<Vec<u8>, SerdeError> + Send + Sync>,
    pub de: Arc<dyn Fn(&str, &[u8]) -> Result<Dyn, SerdeError> + Send + Sync>,
    /// `Serde::partition_bytes`: what a sink partitions a key by, when not its serialized bytes.
    pub partition: PartitionBytesFn,
}

/// A type-erased `Serde::partition_bytes`.
pub type PartitionBytesFn =
    Arc<dyn Fn(&str, &Dyn) -> Result<Option<Vec<u8>>, SerdeError> + Send + Sync>;

/// For serdes that partition by their serialized bytes.
pub fn by_serialized_bytes() -> PartitionBytesFn {
    Arc::new(|_, _| Ok(None))
}

impl ErasedSerde {
    pub fn of<T: Send + Sync + 'static>(s: SerdeRef<T>) -> Self {
        let s2 = s.clone();
        let s3 = s.clone();
        ErasedSerde {
            ser: Arc::new(move |topic, d| match d.downcast_ref::<T>() {
                Some(v) => s.serialize(topic, v),
                None => Err(SerdeError::new(
                    topic,
                    format!(
                        "value is not a {} (wrong serde for this stream?)",
                        std::any::type_name::<T>()
                    ),
                )),
            }),
            de: Arc::new(move |topic, b| Ok(Arc::new(s2.deserialize(topic, b)?) as Dyn)),
            partition: Arc::new(move |topic, d| match d.downcast_ref::<T>() {
                Some(v) => s3.partition_bytes(topic, v),
                None => Ok(None),
            }),
        }
    }
    pub fn serialize_opt(
        &self,
        topic: &str,
        d: Option<&Dyn>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        d.map(|d| (self.ser)(topic, d)).transpose()
    }
    pub fn deserialize_opt(
        &self,
        topic: &str,
        b: Option<&[u8]>,
    ) -> Result<Option<Dyn>, SerdeError> {
        b.map(|b| (self.de)(topic, b)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_byte_layouts() {
        assert_eq!(
            Serdes::i64().serialize("t", &1).unwrap(),
            vec![0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            Serdes::i32().serialize("t", &-2).unwrap(),
            vec![0xff, 0xff, 0xff, 0xfe]
        );
        assert!(Serdes::i64().deserialize("t", &[1, 2]).is_err());
        let w = Serdes::time_windowed(Serdes::string(), 10);
        let b = w
            .serialize(
                "t",
                &Windowed {
                    key: "a".to_string(),
                    window: Window::new(5, 15),
                },
            )
            .unwrap();
        assert_eq!(b, vec![b'a', 0, 0, 0, 0, 0, 0, 0, 5]);
        let back = w.deserialize("t", &b).unwrap();
        assert_eq!(
            (back.key.as_str(), back.window.start, back.window.end),
            ("a", 5, 15)
        );
        let s = Serdes::session_windowed(Serdes::string());
        let b = s
            .serialize(
                "t",
                &Windowed {
                    key: "k".to_string(),
                    window: Window::new(1, 2),
                },
            )
            .unwrap();
        assert_eq!(
            b,
            vec![b'k', 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    /// Sinks partition windowed keys by the base key, as Kafka's WindowedStreamPartitioner, so
    /// every window of a key goes to the partition the key itself would.
    #[test]
    fn windowed_keys_partition_by_their_base_key() {
        let w = Windowed {
            key: "k".to_string(),
            window: Window::new(60_000, 120_000),
        };
        for s in [
            ErasedSerde::of(Serdes::time_windowed(Serdes::string(), 60_000)),
            ErasedSerde::of(Serdes::session_windowed(Serdes::string())),
        ] {
            let d: Dyn = Arc::new(w.clone());
            assert_eq!((s.partition)("t", &d).unwrap(), Some(b"k".to_vec()));
        }
        let plain = ErasedSerde::of(Serdes::string());
        let d: Dyn = Arc::new("k".to_string());
        assert_eq!((plain.partition)("t", &d).unwrap(), None);
    }
}
