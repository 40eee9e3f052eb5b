//! The byte layouts of the records in the embedded store's tables. Hand-written and fixed
//! width so that decoding a damaged record is a clear error, never a panic.

use crate::types::{Event, KeyValue, LeaseId, Revision};

/// A key's record in the `kv` table: everything in [`KeyValue`] but the key.
pub(crate) struct StoredKey {
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: u64,
    pub lease: Option<LeaseId>,
}

impl StoredKey {
    pub fn into_key_value(self, key: String) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// A lease's record in the `leases` table.
pub(crate) struct StoredLease {
    pub ttl_millis: u64,
    /// When it expires, in milliseconds since the Unix epoch, so a reopened store can revoke
    /// leases that expired while it was closed.
    pub expires_unix_millis: u64,
}

const PUT: u8 = 0;
const DELETE: u8 = 1;
/// Several events of one revision (a transaction): a count, then each event's length and
/// encoding. A revision with one event keeps the single-event form.
const GROUP: u8 = 2;

pub(crate) fn encode_key(record: &StoredKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(33 + record.value.len());
    bytes.extend_from_slice(&record.create_revision.0.to_le_bytes());
    bytes.extend_from_slice(&record.mod_revision.0.to_le_bytes());
    bytes.extend_from_slice(&record.version.to_le_bytes());
    push_lease(&mut bytes, record.lease);
    bytes.extend_from_slice(&record.value);
    bytes
}

pub(crate) fn decode_key(bytes: &[u8]) -> Result<StoredKey, String> {
    let mut reader = Reader { bytes, what: "key" };
    Ok(StoredKey {
        create_revision: Revision(reader.u64()?),
        mod_revision: Revision(reader.u64()?),
        version: reader.u64()?,
        lease: reader.lease()?,
        value: reader.rest().to_vec(),
    })
}

pub(crate) fn encode_event(event: &Event) -> Vec<u8> {
    match event {
        Event::Put(kv) => {
            let mut bytes = Vec::with_capacity(30 + kv.key.len() + kv.value.len());
            bytes.push(PUT);
            bytes.extend_from_slice(&kv.create_revision.0.to_le_bytes());
            bytes.extend_from_slice(&kv.version.to_le_bytes());
            push_lease(&mut bytes, kv.lease);
            let key_length = u32::try_from(kv.key.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&key_length.to_le_bytes());
            bytes.extend_from_slice(kv.key.as_bytes());
            bytes.extend_from_slice(&kv.value);
            bytes
        }
        Event::Delete { key, .. } => {
            let mut bytes = Vec::with_capacity(1 + key.len());
            bytes.push(DELETE);
            bytes.extend_from_slice(key.as_bytes());
            bytes
        }
    }
}

/// The `log` record of one revision's events (one, or a transaction's, in order).
pub(crate) fn encode_events(events: &[Event]) -> Vec<u8> {
    if let [event] = events {
        return encode_event(event);
    }
    let mut bytes = vec![GROUP];
    let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&count.to_le_bytes());
    for event in events {
        let encoded = encode_event(event);
        let length = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&encoded);
    }
    bytes
}

/// The events of one `log` record, in order.
pub(crate) fn decode_events(revision: Revision, bytes: &[u8]) -> Result<Vec<Event>, String> {
    if bytes.first() != Some(&GROUP) {
        return Ok(vec![decode_event(revision, bytes)?]);
    }
    let mut reader = Reader {
        bytes: &bytes[1..],
        what: "event group",
    };
    let count = reader.u32()?;
    let mut events = Vec::new();
    for _ in 0..count {
        let length = usize::try_from(reader.u32()?).map_err(|_| reader.short())?;
        let (head, tail) = reader
            .bytes
            .split_at_checked(length)
            .ok_or_else(|| reader.short())?;
        reader.bytes = tail;
        events.push(decode_event(revision, head)?);
    }
    if events.is_empty() {
        return Err(format!("the event group at revision {revision} is empty"));
    }
    Ok(events)
}

pub(crate) fn decode_event(revision: Revision, bytes: &[u8]) -> Result<Event, String> {
    let mut reader = Reader {
        bytes,
        what: "event",
    };
    match reader.u8()? {
        PUT => {
            let create_revision = Revision(reader.u64()?);
            let version = reader.u64()?;
            let lease = reader.lease()?;
            let key_length = usize::try_from(reader.u32()?).map_err(|_| reader.short())?;
            let key = reader.string(key_length)?;
            Ok(Event::Put(KeyValue {
                key,
                value: reader.rest().to_vec(),
                create_revision,
                mod_revision: revision,
                version,
                lease,
            }))
        }
        DELETE => {
            let length = reader.bytes.len();
            Ok(Event::Delete {
                key: reader.string(length)?,
                revision,
            })
        }
        other => Err(format!(
            "event at revision {revision} has unknown kind {other}"
        )),
    }
}

pub(crate) fn encode_lease(record: &StoredLease) -> [u8; 16] {
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&record.ttl_millis.to_le_bytes());
    bytes[8..].copy_from_slice(&record.expires_unix_millis.to_le_bytes());
    bytes
}

pub(crate) fn decode_lease(bytes: &[u8]) -> Result<StoredLease, String> {
    let mut reader = Reader {
        bytes,
        what: "lease",
    };
    Ok(StoredLease {
        ttl_millis: reader.u64()?,
        expires_unix_millis: reader.u64()?,
    })
}

fn push_lease(bytes: &mut Vec<u8>, lease: Option<LeaseId>) {
    match lease {
        Some(LeaseId(id)) => {
            bytes.push(1);
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        None => {
            bytes.push(0);
            bytes.extend_from_slice(&0_i64.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, tail) = self.bytes.split_at_checked(N).ok_or_else(|| self.short())?;
        self.bytes = tail;
        head.try_into().map_err(|_| self.short())
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    fn lease(&mut self) -> Result<Option<LeaseId>, String> {
        let present = self.u8()?;
        let id = i64::from_le_bytes(self.take()?);
        Ok((present == 1).then_some(LeaseId(id)))
    }

    fn string(&mut self, length: usize) -> Result<String, String> {
        let (head, tail) = self
            .bytes
            .split_at_checked(length)
            .ok_or_else(|| self.short())?;
        self.bytes = tail;
        String::from_utf8(head.to_vec())
            .map_err(|_| format!("a {} record has a key that is not UTF-8", self.what))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn short(&self) -> String {
        format!("a {} record is truncated", self.what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_truncation_is_an_error_not_a_panic() {
        let put = Event::Put(KeyValue {
            key: "a/b".into(),
            value: b"value".to_vec(),
            create_revision: Revision(3),
            mod_revision: Revision(7),
            version: 2,
            lease: Some(LeaseId(9)),
        });
        let bytes = encode_event(&put);
        assert_eq!(decode_event(Revision(7), &bytes), Ok(put));
        for length in 0..30 {
            assert!(decode_event(Revision(7), &bytes[..length]).is_err());
        }
        let delete = Event::Delete {
            key: "a".into(),
            revision: Revision(8),
        };
        assert_eq!(
            decode_event(Revision(8), &encode_event(&delete)),
            Ok(delete)
        );
    }

    #[test]
    fn a_transactions_events_round_trip_as_one_record() {
        let put = Event::Put(KeyValue {
            key: "a".into(),
            value: b"1".to_vec(),
            create_revision: Revision(4),
            mod_revision: Revision(4),
            version: 1,
            lease: None,
        });
        let delete = Event::Delete {
            key: "b".into(),
            revision: Revision(4),
        };
        let group = vec![put.clone(), delete.clone()];
        let bytes = encode_events(&group);
        assert_eq!(decode_events(Revision(4), &bytes), Ok(group));
        for length in 0..bytes.len() {
            assert!(decode_events(Revision(4), &bytes[..length]).is_err());
        }
        let single = encode_events(std::slice::from_ref(&put));
        assert_eq!(single, encode_event(&put), "one event keeps the old layout");
        assert_eq!(decode_events(Revision(4), &single), Ok(vec![put]));
        assert!(decode_events(Revision(4), &[GROUP, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn key_records_round_trip() {
        let record = StoredKey {
            value: vec![1, 2, 3],
            create_revision: Revision(1),
            mod_revision: Revision(5),
            version: 4,
            lease: None,
        };
        let decoded = decode_key(&encode_key(&record));
        assert!(decoded.is_ok_and(|decoded| decoded.value == vec![1, 2, 3]
            && decoded.mod_revision == Revision(5)
            && decoded.version == 4
            && decoded.lease.is_none()));
        assert!(decode_key(&[0; 10]).is_err());
    }
}
