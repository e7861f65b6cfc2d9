//! Kafka's KTable-KTable foreign-key join (KIP-213): `KTable::join_foreign_key` and
//! `left_join_foreign_key`. The left table sends a subscription (its primary key and a hash of its
//! value) keyed by the foreign key through `<app>-KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-<n>-topic`,
//! which is co-partitioned with the right table; the right side keeps the subscriptions in a
//! store, and answers with the right value through `<app>-KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-<n>-topic`,
//! co-partitioned with the left table, where the result is computed only if the left value's hash
//! still matches (so stale answers after a foreign-key change are dropped). Owns only these
//! processors and their wiring; the tables' own stores are not written here.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::dsl::{Data, KTable};
use crate::error::Result;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Change, Dyn, Record};
use crate::serde::{ErasedSerde, Serdes};
use crate::state::StoreKind;
use crate::topology::{SinkTopic, StoreDef};

/// Subscription instructions (the subset of Kafka's we need).
const DELETE: u8 = 0;
/// Answer even when the foreign key has no row (left joins, and inner joins whose earlier result
/// must be retracted).
const PROPAGATE_NULL: u8 = 2;
/// Answer only when the foreign key has a row (a new inner-join subscription).
const PROPAGATE_ONLY_IF_FK: u8 = 3;

/// FNV-1a over the serialized left value: only compared with itself, never persisted outside
/// this application's internal topics.
fn hash(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn bytes(d: &Dyn) -> &[u8] {
    d.downcast_ref::<Vec<u8>>().map_or(&[], |v| v.as_slice())
}

type Extractor = Arc<dyn Fn(&Dyn) -> Option<Dyn> + Send + Sync>;
type Joiner = Arc<dyn Fn(&Dyn, Option<&Dyn>) -> Option<Dyn> + Send + Sync>;

/// Left side: turns each left-row change into subscriptions (keyed by foreign key) and, when there
/// is no foreign key any more, a direct answer to itself.
struct SubscriptionSend {
    store: String,
    ks: ErasedSerde,
    vs: ErasedSerde,
    fks: ErasedSerde,
    extract: Extractor,
    left: bool,
    sub_sink: String,
    direct_sink: String,
}

impl Processor for SubscriptionSend {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(c)) = (r.key.as_ref(), r.value_as::<Change>()) else {
            return Ok(());
        };
        let pk = (self.ks.ser)(&self.store, k)?;
        let new_fk = c.new.as_ref().and_then(|v| (self.extract)(v));
        let old_fk = c.old.as_ref().and_then(|v| (self.extract)(v));
        let new_fkb = match &new_fk {
            Some(f) => Some((self.fks.ser)(&self.store, f)?),
            None => None,
        };
        let old_fkb = match &old_fk {
            Some(f) => Some((self.fks.ser)(&self.store, f)?),
            None => None,
        };
        let h = match &c.new {
            Some(v) => Some(hash(&(self.vs.ser)(&self.store, v)?)),
            None => None,
        };
        let sub = |instr: u8| {
            let mut b = vec![instr];
            b.extend_from_slice(&h.unwrap_or(0).to_be_bytes());
            b.extend_from_slice(&pk);
            Arc::new(b) as Dyn
        };
        if let (Some(of), Some(ofb)) = (old_fk, &old_fkb)
            && new_fkb.as_ref() != Some(ofb)
        {
            let rec = Record::new(Some(of), Some(sub(DELETE)), r.timestamp);
            ctx.forward_to(&self.sub_sink.clone(), rec)?;
        }
        match (new_fk, h) {
            (Some(nf), Some(_)) => {
                let instr = if self.left || c.old.is_some() {
                    PROPAGATE_NULL
                } else {
                    PROPAGATE_ONLY_IF_FK
                };
                let rec = Record::new(Some(nf), Some(sub(instr)), r.timestamp);
                ctx.forward_to(&self.sub_sink.clone(), rec)?;
            }
            _ => {
                // No foreign key (or the row is gone): answer directly, with no foreign value.
                let mut b = vec![u8::from(h.is_some())];
                b.extend_from_slice(&h.unwrap_or(0).to_be_bytes());
                b.push(0);
                let rec = Record::new(Some(k.clone()), Some(Arc::new(b) as Dyn), r.timestamp);
                ctx.forward_to(&self.direct_sink.clone(), rec)?;
            }
        }
        Ok(())
    }
}

fn response(hash: &[u8], foreign: Option<&[u8]>) -> Dyn {
    let mut b = vec![1];
    b.extend_from_slice(hash);
    match foreign {
        Some(f) => {
            b.push(1);
            b.extend_from_slice(f);
        }
        None => b.push(0),
    }
    Arc::new(b) as Dyn
}

/// Subscription-store key: 4-byte length + foreign key + primary key, so one foreign key's
/// subscribers are a prefix range.
fn sub_key(fk: &[u8], pk: &[u8]) -> Vec<u8> {
    let mut k = (fk.len() as u32).to_be_bytes().to_vec();
    k.extend_from_slice(fk);
    k.extend_from_slice(pk);
    k
}

/// Right side: stores subscriptions and answers each with the foreign row as it is now.
struct SubscriptionReceive {
    subs: String,
    right_store: String,
    fks: ErasedSerde,
    ks: ErasedSerde,
}

impl Processor for SubscriptionReceive {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(fk), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        let v = bytes(v);
        if v.len() < 9 {
            return Ok(());
        }
        let (instr, h, pk) = (v[0], &v[1..9], &v[9..]);
        let fkb = (self.fks.ser)(&self.subs, fk)?;
        let key = sub_key(&fkb, pk);
        if instr == DELETE {
            return ctx.store(&self.subs)?.put(&key, None, r.timestamp);
        }
        ctx.store(&self.subs)?
            .put(&key, Some(&v[..9]), r.timestamp)?;
        let foreign = ctx.store(&self.right_store)?.get(&fkb)?.map(|(_, b)| b);
        if foreign.is_none() && instr == PROPAGATE_ONLY_IF_FK {
            return Ok(());
        }
        let pkd = (self.ks.de)(&self.subs, pk)?;
        let rec = Record::new(
            Some(pkd),
            Some(response(h, foreign.as_deref())),
            r.timestamp,
        );
        ctx.forward(rec)
    }
}

/// Right side: a change of a foreign row answers every subscriber of its key.
struct ForeignChange {
    subs: String,
    fks: ErasedSerde,
    fvs: ErasedSerde,
    ks: ErasedSerde,
}

impl Processor for ForeignChange {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(fk), Some(c)) = (r.key.as_ref(), r.value_as::<Change>()) else {
            return Ok(());
        };
        let fkb = (self.fks.ser)(&self.subs, fk)?;
        let prefix = sub_key(&fkb, &[]);
        let foreign = match &c.new {
            Some(v) => Some((self.fvs.ser)(&self.subs, v)?),
            None => None,
        };
        let rows = ctx.store(&self.subs)?.range(Some(&prefix), None)?;
        for (key, _, v) in rows
            .into_iter()
            .take_while(|(k, _, _)| k.starts_with(&prefix))
        {
            if v.len() < 9 {
                continue;
            }
            let pkd = (self.ks.de)(&self.subs, &key[prefix.len()..])?;
            let rec = Record::new(
                Some(pkd),
                Some(response(&v[1..9], foreign.as_deref())),
                r.timestamp,
            );
            ctx.forward(rec)?;
        }
        Ok(())
    }
}

/// Left side: joins an answer with the left row, if the row still hashes as when it subscribed.
struct ResponseJoin {
    left_store: String,
    ks: ErasedSerde,
    vs: ErasedSerde,
    fvs: ErasedSerde,
    joiner: Joiner,
    left: bool,
}

impl Processor for ResponseJoin {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, r: Record) -> Result<()> {
        let (Some(k), Some(v)) = (r.key.as_ref(), r.value.as_ref()) else {
            return Ok(());
        };
        let v = bytes(v);
        if v.len() < 10 {
            return Ok(());
        }
        let (has_hash, h, foreign) = (v[0] == 1, &v[1..9], (v[9] == 1).then(|| &v[10..]));
        let pk = (self.ks.ser)(&self.left_store, k)?;
        let current = ctx.store(&self.left_store)?.get(&pk)?.map(|(_, b)| b);
        let new = match current {
            None if !has_hash => None,
            Some(cur) if has_hash && hash(&cur).to_be_bytes() == h => {
                let lv = (self.vs.de)(&self.left_store, &cur)?;
                match foreign {
                    Some(f) => {
                        let fv = (self.fvs.de)(&self.left_store, f)?;
                        (self.joiner)(&lv, Some(&fv))
                    }
                    None if self.left => (self.joiner)(&lv, None),
                    None => None,
                }
            }
            // A stale answer: the row changed since it subscribed.
            _ => return Ok(()),
        };
        let rec = Record::new(
            Some(k.clone()),
            Some(Arc::new(Change { new, old: None })),
            r.timestamp,
        );
        ctx.forward(rec)
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Kafka's KTable-KTable foreign-key `join(other, foreignKeyExtractor, joiner)`: each left row
    /// joins the right row whose key `extractor` picks from the left value. Both tables must be
    /// materialized with serdes. The result is keyed by the left key (not materialized).
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.fk_join(
            other,
            extractor,
            false,
            Arc::new(move |l, r| {
                let (l, r) = (l.downcast_ref::<V>()?, r?.downcast_ref::<VO>()?);
                Some(Arc::new(joiner(l, r)) as Dyn)
            }),
        )
    }

    /// Kafka's foreign-key `leftJoin`: left rows without a foreign key or without a matching right
    /// row join with `None`.
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> Option<KO> + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.fk_join(
            other,
            extractor,
            true,
            Arc::new(move |l, r| {
                let l = l.downcast_ref::<V>()?;
                Some(Arc::new(joiner(l, r.and_then(|r| r.downcast_ref::<VO>()))) as Dyn)
            }),
        )
    }

    fn fk_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> Option<KO> + Send + Sync + 'static,
        left: bool,
        joiner: Joiner,
    ) -> KTable<K, VR> {
        let b = self.b.clone();
        let reg = b.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-");
        let resp = b.new_name("KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-");
        let result = b.new_name("KTABLE-FK-JOIN-OUTPUT-");
        let dangling = || KTable {
            b: b.clone(),
            node: result.clone(),
            store: None,
            ks: None,
            vs: None,
            sources: BTreeSet::new(),
            window_grace: None,
            _p: PhantomData,
        };
        let (Some(ls), Some(rs)) = (self.store.clone(), other.store.clone()) else {
            b.error(format!(
                "foreign-key join of {} and {} needs both tables materialized",
                self.node, other.node
            ));
            return dangling();
        };
        let (Some(ks), Some(vs), Some(fks), Some(fvs)) = (
            self.ks.clone().map(ErasedSerde::of),
            self.vs.clone().map(ErasedSerde::of),
            other.ks.clone().map(ErasedSerde::of),
            other.vs.clone().map(ErasedSerde::of),
        ) else {
            b.error(format!(
                "foreign-key join of {} and {} needs key and value serdes on both tables",
                self.node, other.node
            ));
            return dangling();
        };
        let raw = ErasedSerde::of(Serdes::bytes());
        let (sub_topic, resp_topic) = (format!("{reg}-topic"), format!("{resp}-topic"));
        let subs_store = format!("{reg}-STATE-STORE");
        let n = |s: &str, p: &str| format!("{s}-{p}");
        let (send, sub_sink, direct_sink) =
            (n(&reg, "SEND"), n(&reg, "SINK"), n(&resp, "DIRECT-SINK"));
        let (sub_src, receive, foreign) =
            (n(&reg, "SOURCE"), n(&reg, "PROCESSOR"), n(&resp, "FOREIGN"));
        let (resp_sink, resp_src) = (n(&resp, "SINK"), n(&resp, "SOURCE"));
        let extract: Extractor = Arc::new(move |d: &Dyn| {
            d.downcast_ref::<V>()
                .and_then(&extractor)
                .map(|k| Arc::new(k) as Dyn)
        });
        {
            let (ls, ks, vs, fks) = (ls.clone(), ks.clone(), vs.clone(), fks.clone());
            let (ss, ds) = (sub_sink.clone(), direct_sink.clone());
            b.add_processor(
                &send,
                Arc::new(move || {
                    Box::new(SubscriptionSend {
                        store: ls.clone(),
                        ks: ks.clone(),
                        vs: vs.clone(),
                        fks: fks.clone(),
                        extract: extract.clone(),
                        left,
                        sub_sink: ss.clone(),
                        direct_sink: ds.clone(),
                    }) as Box<dyn Processor>
                }),
                &[&self.node],
            );
        }
        {
            let (subs, rs2, fks2, ks2) = (subs_store.clone(), rs.clone(), fks.clone(), ks.clone());
            let (fks3, fvs3, ks3, subs3) =
                (fks.clone(), fvs.clone(), ks.clone(), subs_store.clone());
            let (st, rt, raw2) = (sub_topic.clone(), resp_topic.clone(), raw.clone());
            let (send2, sub_sink2, sub_src2, receive2, foreign2, other_node) = (
                send.clone(),
                sub_sink.clone(),
                sub_src.clone(),
                receive.clone(),
                foreign.clone(),
                other.node.clone(),
            );
            let (resp_sink2, direct2, resp_src2, ks4) = (
                resp_sink.clone(),
                direct_sink.clone(),
                resp_src.clone(),
                ks.clone(),
            );
            b.with_topo(move |t| {
                t.internal_topics.insert(st.clone());
                t.internal_topics.insert(rt.clone());
                t.add_sink(
                    &sub_sink2,
                    SinkTopic::Fixed(st.clone()),
                    Some(fks.clone()),
                    Some(raw2.clone()),
                    &[&send2],
                )?;
                t.add_source(&sub_src2, &[&st], Some(fks.clone()), Some(raw2.clone()))?;
                t.add_processor(
                    &receive2,
                    Arc::new(move || {
                        Box::new(SubscriptionReceive {
                            subs: subs.clone(),
                            right_store: rs2.clone(),
                            fks: fks2.clone(),
                            ks: ks2.clone(),
                        }) as Box<dyn Processor>
                    }),
                    &[&sub_src2],
                )?;
                t.add_processor(
                    &foreign2,
                    Arc::new(move || {
                        Box::new(ForeignChange {
                            subs: subs3.clone(),
                            fks: fks3.clone(),
                            fvs: fvs3.clone(),
                            ks: ks3.clone(),
                        }) as Box<dyn Processor>
                    }),
                    &[&other_node],
                )?;
                t.add_sink(
                    &resp_sink2,
                    SinkTopic::Fixed(rt.clone()),
                    Some(ks4.clone()),
                    Some(raw2.clone()),
                    &[&receive2, &foreign2],
                )?;
                t.add_sink(
                    &direct2,
                    SinkTopic::Fixed(rt.clone()),
                    Some(ks4.clone()),
                    Some(raw2.clone()),
                    &[&send2],
                )?;
                t.add_source(&resp_src2, &[&rt], Some(ks4), Some(raw2))?;
                Ok(())
            });
        }
        b.add_store(
            StoreDef {
                name: subs_store.clone(),
                kind: StoreKind::KeyValue,
                logging: true,
                caching: false,
                key_serde: None,
                value_serde: None,
            },
            &[&receive, &foreign],
        );
        b.connect_store(&receive, &rs);
        {
            let (ls2, ks2, vs2, fvs2) = (ls.clone(), ks.clone(), vs.clone(), fvs.clone());
            b.add_processor(
                &result,
                Arc::new(move || {
                    Box::new(ResponseJoin {
                        left_store: ls2.clone(),
                        ks: ks2.clone(),
                        vs: vs2.clone(),
                        fvs: fvs2.clone(),
                        joiner: joiner.clone(),
                        left,
                    }) as Box<dyn Processor>
                }),
                &[&resp_src],
            );
        }
        b.connect_store(&result, &ls);
        let mut right_group = other.sources.clone();
        right_group.insert(sub_topic);
        let mut left_group = self.sources.clone();
        left_group.insert(resp_topic.clone());
        b.with_topo(|t| {
            t.copartition_groups.push(right_group);
            t.copartition_groups.push(left_group);
            Ok(())
        });
        KTable {
            b: b.clone(),
            node: result,
            store: None,
            ks: self.ks.clone(),
            vs: None,
            sources: self.sources.clone(),
            window_grace: None,
            _p: PhantomData,
        }
    }
}
