//! Read-only queries behind the Customers screen: search, one customer's
//! 360 view (golden record with provenance, records, identifiers, timeline).
