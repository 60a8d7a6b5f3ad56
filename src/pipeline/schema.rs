//! The core fields of each source system: the contract between a source's
//! column mapping (`c360.toml`) and the staging tables.
//!
//! The staging tables in `store/migrations/0001_init.sql` have exactly these
//! columns (checked by a unit test), so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three source systems of the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Crm,
    Web,
    Transactions,
}

impl System {
    pub const ALL: [System; 3] = [System::Crm, System::Web, System::Transactions];

    pub fn as_str(self) -> &'static str {
        match self {
            System::Crm => "crm",
            System::Web => "web",
            System::Transactions => "transactions",
        }
    }

    /// The staging table this system's validated rows go to.
    pub fn staging_table(self) -> &'static str {
        match self {
            System::Crm => "stg_crm_customers",
            System::Web => "stg_web_events",
            System::Transactions => "stg_transactions",
        }
    }

    /// The core fields of this system, in staging-table column order.
    pub fn fields(self) -> &'static [Field] {
        match self {
            System::Crm => CRM_FIELDS,
            System::Web => WEB_FIELDS,
            System::Transactions => TRANSACTION_FIELDS,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// Groups of fields of which at least one must hold a value.
    pub fn required_any(self) -> &'static [&'static [&'static str]] {
        match self {
            System::Transactions => &[&["customer_id", "email"]],
            _ => &[],
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a core field's text is validated and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Kept as trimmed text.
    Text,
    /// A point in time in one of many layouts; stored as UTC ISO 8601 plus the
    /// original text in `<name>_raw`.
    Timestamp,
    /// A decimal number (f64).
    Number,
    /// A whole number (i64).
    Integer,
    /// A JSON object (event properties), stored as compact JSON text.
    JsonObject,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Timestamp => "timestamp",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::JsonObject => "json object",
        }
    }
}

/// One core field of a system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    /// A row without a value here is rejected; a file without the mapped
    /// column is refused before anything is written.
    pub required: bool,
}

const fn f(name: &'static str, ty: FieldType, required: bool) -> Field {
    Field { name, ty, required }
}

use FieldType::*;

const CRM_FIELDS: &[Field] = &[
    f("customer_id", Text, true),
    f("first_name", Text, false),
    f("last_name", Text, false),
    f("full_name", Text, false),
    f("email", Text, false),
    f("phone", Text, false),
    f("birth_date", Text, false),
    f("address", Text, false),
    f("city", Text, false),
    f("postcode", Text, false),
    f("region", Text, false),
    f("country", Text, false),
    f("lifecycle_status", Text, false),
    f("created_at", Timestamp, false),
    f("updated_at", Timestamp, false),
    TIMEZONE,
];

/// A row's own time zone for its naive times (IANA, Windows or Rails
/// names, offsets); without one, the source's `timezone`.
const TIMEZONE: Field = f("timezone", Text, false);

const WEB_FIELDS: &[Field] = &[
    f("event_id", Text, true),
    f("event_name", Text, true),
    f("event_time", Timestamp, true),
    f("event_type", Text, false),
    f("user_id", Text, false),
    f("cookie_id", Text, false),
    f("device_id", Text, false),
    f("session_id", Text, false),
    f("page_url", Text, false),
    f("order_id", Text, false),
    f("properties", JsonObject, false),
    // Identities an event carries (Segment `identify` traits, `alias`).
    f("email", Text, false),
    f("phone", Text, false),
    f("previous_id", Text, false),
    TIMEZONE,
];

const TRANSACTION_FIELDS: &[Field] = &[
    f("order_id", Text, true),
    f("customer_id", Text, false),
    f("email", Text, false),
    f("order_time", Timestamp, true),
    f("product_id", Text, false),
    f("product_name", Text, false),
    f("category", Text, false),
    f("quantity", Integer, false),
    f("unit_price", Number, false),
    f("currency", Text, false),
    f("revenue", Number, true),
    f("transaction_type", Text, false),
    TIMEZONE,
    // What was refunded of a partly refunded order (Shopify's "Refunded
    // Amount"): netted from its revenue.
    f("refunded_amount", Number, false),
    // The buyer as the order names them (Square's "Customer Name",
    // Shopify's "Billing Name", guest checkouts): compared with the CRM.
    f("first_name", Text, false),
    f("last_name", Text, false),
    f("full_name", Text, false),
    f("phone", Text, false),
];

/// The column names of a staging table, in order: provenance columns, then
/// each core field (timestamps followed by their `_raw` text), then `extra`.
pub fn staging_columns(system: System) -> Vec<String> {
    let mut cols = vec!["source".to_string(), "batch_id".into(), "row_num".into()];
    for field in system.fields() {
        cols.push(field.name.to_string());
        if field.ty == FieldType::Timestamp {
            cols.push(format!("{}_raw", field.name));
        }
    }
    cols.push("extra".into());
    cols
}

/// Default mapping for web events in the Segment / RudderStack event spec:
/// core field -> candidate paths, first non-empty wins.
pub const SEGMENT_MAPPING: &[(&str, &str)] = &[
    ("event_id", "messageId|message_id|id"),
    ("event_name", "event|name|type"),
    (
        "event_time",
        "timestamp|originalTimestamp|sentAt|receivedAt",
    ),
    ("event_type", "type"),
    ("user_id", "userId|user_id"),
    ("cookie_id", "anonymousId|anonymous_id"),
    (
        "device_id",
        "context.device.id|context.device.advertisingId",
    ),
    (
        "session_id",
        "properties.session_id|context.sessionId|context.session_id",
    ),
    ("page_url", "context.page.url|properties.url"),
    ("order_id", "properties.order_id|properties.orderId"),
    ("properties", "properties"),
    // `identify` calls carry the person's traits; analytics.js and
    // RudderStack also copy them into `context.traits` on every call.
    ("email", "traits.email|context.traits.email"),
    ("phone", "traits.phone|context.traits.phone"),
    // `alias` calls: the id the user had before (an anonymous id or an
    // earlier user id).
    ("previous_id", "previousId|previous_id"),
    // Legacy SDKs send a naive time and the device's zone.
    ("timezone", "context.timezone|timezone"),
];
