//! Phase "golden candidates": the CRM records (and order e-mails) of a
//! customer, the candidates its golden values are chosen among.

use super::each_row;
use crate::pipeline::timeparse::iso_ms;
use anyhow::Result;
use rusqlite::Connection;
use rustc_hash::FxHashMap;

/// An e-mail on an order: (e-mail, order time, event_seq).
pub(super) type OrderEmail = (Box<str>, Option<i64>, i64);

/// One CRM record of a customer (the candidates of its golden values): its
/// texts back to back in one buffer, so a million records stay small.
pub(super) struct CrmRow {
    text: Box<str>,
    ends: [u32; CrmRow::FIELDS],
    pub created: Option<i64>,
    /// updated_at, else created_at.
    pub time: Option<i64>,
}

impl CrmRow {
    pub const FIELDS: usize = 11;
    pub const KEY: usize = 0;
    pub const SOURCE: usize = 1;
    pub const CUSTOMER_ID: usize = 2;
    pub const FIRST: usize = 3;
    pub const LAST: usize = 4;
    pub const FULL: usize = 5;
    pub const EMAIL: usize = 6;
    pub const PHONE: usize = 7;
    pub const COUNTRY: usize = 8;
    pub const CITY: usize = 9;
    pub const LIFECYCLE: usize = 10;

    pub fn new(
        values: [Option<&str>; CrmRow::FIELDS],
        created: Option<i64>,
        time: Option<i64>,
    ) -> Self {
        let mut text = String::new();
        let mut ends = [0u32; CrmRow::FIELDS];
        for (i, v) in values.iter().enumerate() {
            text.push_str(v.unwrap_or(""));
            ends[i] = text.len() as u32;
        }
        CrmRow {
            text: text.into_boxed_str(),
            ends,
            created,
            time,
        }
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let v = &self.text[start..self.ends[i] as usize];
        (!v.is_empty()).then_some(v)
    }

    pub fn key(&self) -> &str {
        self.get(CrmRow::KEY).unwrap_or("")
    }
}

/// Each customer's CRM records (sorted by record key) and order e-mails.
pub(super) struct Candidates {
    pub crm: Vec<Vec<CrmRow>>,
    pub order_emails: Vec<Vec<OrderEmail>>,
}

const CRM_COLUMNS: &str = "m.customer360_id, m.record_key, c.source, c.customer_id,
    c.first_name, c.last_name, c.full_name, c.email, c.phone, c.country, c.city,
    c.lifecycle_status, c.created_at, c.updated_at";

/// The candidates of every customer of `index`, or (with `only`) of the
/// given customers.
pub(super) fn gather(
    tx: &Connection,
    index: &FxHashMap<&str, u32>,
    only: Option<&[String]>,
) -> Result<Candidates> {
    let mut out = Candidates {
        crm: (0..index.len()).map(|_| Vec::new()).collect(),
        order_emails: (0..index.len()).map(|_| Vec::new()).collect(),
    };
    let crm_all = format!(
        "SELECT {CRM_COLUMNS} FROM clean_crm_customers c
         JOIN customer360_id_map m ON m.record_key = 'crm:' || c.source || ':' || c.customer_id"
    );
    let crm_one = format!(
        "SELECT {CRM_COLUMNS} FROM customer360_id_map m
         JOIN clean_crm_customers c ON c.source = m.source AND c.customer_id = m.record_id
         WHERE m.customer360_id = ?1 AND m.system = 'crm'"
    );
    const EMAILS: &str =
        "SELECT customer360_id, json_extract(properties, '$.email'), event_time, event_seq
         FROM customer360_events
         WHERE system = 'transactions' AND json_extract(properties, '$.email') IS NOT NULL";
    let emails_one = format!("{EMAILS} AND customer360_id = ?1");
    each_row(tx, &crm_all, &crm_one, only, |r| {
        let Some(&ci) = index.get(r.get_ref(0)?.as_str()?) else {
            return Ok(());
        };
        let created = r.get_ref(12)?.as_str_or_null()?.and_then(iso_ms);
        let updated = r.get_ref(13)?.as_str_or_null()?.and_then(iso_ms);
        let mut f = [None; CrmRow::FIELDS];
        for (k, slot) in f.iter_mut().enumerate() {
            *slot = r.get_ref(1 + k)?.as_str_or_null()?;
        }
        out.crm[ci as usize].push(CrmRow::new(f, created, updated.or(created)));
        Ok(())
    })?;
    // Order e-mails: (e-mail, order time, event_seq); the record key of a
    // winning one is looked up by its event_seq.
    each_row(tx, EMAILS, &emails_one, only, |r| {
        let Some(&ci) = index.get(r.get_ref(0)?.as_str()?) else {
            return Ok(());
        };
        let value: String = r.get(1)?;
        let time = r.get_ref(2)?.as_str()?;
        out.order_emails[ci as usize].push((value.into_boxed_str(), iso_ms(time), r.get(3)?));
        Ok(())
    })?;
    for rows in &mut out.crm {
        rows.sort_by(|a, b| a.key().cmp(b.key()));
    }
    for emails in &mut out.order_emails {
        emails.sort_by_key(|e| e.2);
    }
    Ok(out)
}
