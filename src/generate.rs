//! Synthetic messy data with ground truth (see issue 2).
//!
//! [`generate`] invents `customers` true individuals ("people") and writes what
//! three source systems would have recorded about them, with the mess real
//! exports have, plus the answer key:
//!
//! | file                   | system | record id     |
//! |------------------------|--------|---------------|
//! | `crm.csv`              | CRM    | `customer_id` |
//! | `web_events.ndjson`    | web    | `messageId`   |
//! | `transactions.parquet` | orders | `order_id`    |
//! | `truth.csv`            | —      | `source,record_id,person_id` |
//!
//! The output is a pure function of [`GenerateOptions`]: one seeded
//! [`ChaCha8Rng`] drives all choices, every date derives from fixed reference
//! instants (events and orders fall between 2024-01-01 and 2025-06-30 UTC), and
//! nothing iterates a hash map. People are generated one at a time and their
//! rows streamed out; only bounded shuffle windows (so that one person's rows
//! are not always adjacent), one parquet batch and a 2 MiB e-mail bitmap are
//! held in memory, whatever the number of customers.
//!
//! Timestamps written without an offset (`2024-03-05 10:15:00`,
//! `03/05/2024 10:15`) are UTC wall-clock times, and slash dates in timestamp
//! columns are month first (US order). Birth dates are the exception: they are
//! plain text and come as `YYYY-MM-DD`, `DD/MM/YYYY` or `MM/DD/YYYY`.

use crate::pipeline::progress::Progress;
use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Datelike, Timelike, Utc};
use polars::prelude::{
    Column, DataFrame, DataType, Field, NamedFrom, ParquetWriter, Schema, Series,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

// ============================================================================
// Public API
// ============================================================================

/// What to generate, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Number of true individuals.
    pub customers: u64,
    /// Output folder; created if missing. Existing files are overwritten.
    pub out: PathBuf,
    /// Seed of the random generator: same options, byte-identical files.
    pub seed: u64,
    /// Mean number of web events per person (light and heavy users vary a lot).
    pub events_per_customer: f64,
    /// Mean number of orders per person (refunds come on top).
    pub orders_per_customer: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            customers: 1000,
            out: PathBuf::from("data"),
            seed: 42,
            events_per_customer: 10.0,
            orders_per_customer: 2.5,
        }
    }
}

/// What [`generate`] wrote. Row counts exclude header lines and include
/// invalid rows and duplicated lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub people: u64,
    pub crm_rows: u64,
    pub web_rows: u64,
    pub transaction_rows: u64,
    pub truth_rows: u64,
    /// The four files, in the order crm, web, transactions, truth.
    pub files: Vec<PathBuf>,
}

/// The CRM file's header, in column order.
pub const CRM_COLUMNS: [&str; 15] = [
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "street",
    "city",
    "postcode",
    "country",
    "lifecycle_status",
    "created_at",
    "updated_at",
    "loyalty_tier",
    "marketing_opt_in",
];

/// The columns of `transactions.parquet`, in order (all nullable in the file;
/// `order_id`, `customer_id`, `email`, `order_time` and `revenue` do hold nulls).
pub const TRANSACTION_COLUMNS: [(&str, DataType); 13] = [
    ("order_id", DataType::String),
    ("customer_id", DataType::String),
    ("email", DataType::String),
    ("order_time", DataType::String),
    ("product_id", DataType::String),
    ("product_name", DataType::String),
    ("category", DataType::String),
    ("quantity", DataType::Int64),
    ("unit_price", DataType::Float64),
    ("currency", DataType::String),
    ("revenue", DataType::Float64),
    ("transaction_type", DataType::String),
    ("channel", DataType::String),
];

/// Write `crm.csv`, `web_events.ndjson`, `transactions.parquet` and
/// `truth.csv` into `opts.out`. Reports phase `"generate"` with
/// `total = customers`, updated every 1000 people; stops with an error when
/// `progress` asks to cancel.
pub fn generate(opts: &GenerateOptions, progress: &dyn Progress) -> Result<GenerateSummary> {
    if !(opts.events_per_customer.is_finite() && opts.events_per_customer >= 0.0) {
        bail!("events per customer must be a number >= 0");
    }
    if !(opts.orders_per_customer.is_finite() && opts.orders_per_customer >= 0.0) {
        bail!("orders per customer must be a number >= 0");
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;

    let mut generator = Generator::new(opts)?;
    progress.start("generate", opts.customers);
    let mut household: Option<Household> = None;
    for index in 0..opts.customers {
        if index % PROGRESS_EVERY == 0 {
            if progress.is_cancelled() {
                bail!("generate cancelled after {index} people");
            }
            progress.update(index);
        }
        household = generator.person(index, household.take())?;
    }
    progress.update(opts.customers);
    let summary = generator.finish()?;
    progress.finish();
    Ok(summary)
}

// ============================================================================
// Tunables
// ============================================================================

const PROGRESS_EVERY: u64 = 1000;
/// Rows held back and released in random order, per line-based file.
const SHUFFLE_WINDOW: usize = 20_000;
/// Orders held back and released in random order.
const ORDER_SHUFFLE_WINDOW: usize = 5_000;
/// Rows per parquet row group.
const PARQUET_BATCH: usize = 50_000;

/// Share of people with 2–3 CRM records.
const P_CRM_DUPLICATE: f64 = 0.15;
/// Share of people who head a household (the next person lives with them).
const P_HOUSEHOLD: f64 = 0.053;
const P_CRM_INVALID: f64 = 0.005;
const P_WEB_INVALID: f64 = 0.003;
const P_WEB_DUPLICATE: f64 = 0.003;
const P_ORDER_INVALID: f64 = 0.003;
const P_REFUND: f64 = 0.05;
const P_GUEST_ORDER: f64 = 0.10;
/// Chance that a web/app order is tracked although the person's event budget
/// is used up (otherwise it is not tracked at all).
const P_TRACKED_OVER_BUDGET: f64 = 0.3;
/// Devices remembered as candidates for sharing.
const RECENT_DEVICES: usize = 1000;
/// Chance that a new device of a person is one already used by someone else.
const P_SHARED_DEVICE: f64 = 0.03;

/// 2019-01-01T00:00:00Z: earliest CRM `created_at`.
const CRM_START_MS: i64 = 1_546_300_800_000;
/// 2024-01-01T00:00:00Z: start of the event and order window.
const WINDOW_START_MS: i64 = 1_704_067_200_000;
/// 2025-07-01T00:00:00Z: end (exclusive) of the event and order window.
const WINDOW_END_MS: i64 = 1_751_328_000_000;
const DAY_MS: i64 = 86_400_000;

// ============================================================================
// Reference data
// ============================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gender {
    Female,
    Male,
}

#[rustfmt::skip]
const FEMALE_FIRST: &[&str] = &[
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Nancy", "Lisa", "Margaret", "Sandra", "Ashley", "Emily", "Donna", "Michelle",
    "Katherine", "Rebecca", "Deborah", "Stephanie", "Victoria", "Alexandra", "Samantha",
    "Christina", "Olivia", "Emma", "Sophia", "Isabella", "Charlotte", "Amelia", "Mia", "Harper",
    "Evelyn", "Abigail", "Chloé", "Zoë", "Anna", "Hannah", "Lea", "Lena", "Julia", "Laura",
    "Katharina", "Sophie", "Marie", "Johanna", "Sabine", "Ursula", "Birgit", "Heike", "Claudia",
    "Camille", "Manon", "Inès", "Léa", "Juliette", "Margaux", "Élodie", "Sanne", "Femke", "Anouk",
    "Fleur", "Lotte", "Carmen", "Lucía", "María", "Sofía", "Valentina", "Martina", "Paula",
    "Elena", "Alba", "Ingrid", "Astrid", "Sigrid", "Freya", "Aoife", "Siobhan", "Priya", "Ananya",
    "Aisha", "Fatima", "Yasmin", "Mei", "Yuki", "Hana", "Olga", "Natasha", "Agnieszka",
    "Małgorzata", "Keisha", "Imani", "Grace", "Ruby", "Isla", "Matilda", "Ava", "Ella",
];

#[rustfmt::skip]
const MALE_FIRST: &[&str] = &[
    "James", "Robert", "John", "Michael", "William", "David", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Andrew", "Steven", "Timothy",
    "Jonathan", "Benjamin", "Samuel", "Alexander", "Nicholas", "Edward", "Patrick", "Brian",
    "Kevin", "Jason", "Ryan", "Jacob", "Ethan", "Noah", "Liam", "Lucas", "Oliver", "Jack", "Harry",
    "George", "Oscar", "Leo", "Finn", "Lukas", "Maximilian", "Felix", "Paul", "Jonas", "Johannes",
    "Wilhelm", "Jürgen", "Stefan", "Klaus", "Matthias", "Sebastian", "Florian", "Tobias", "Hugo",
    "Louis", "Gabriel", "Raphaël", "Arthur", "Théo", "Jules", "François", "Antoine", "Sem", "Daan",
    "Bram", "Jeroen", "Thijs", "José", "Francisco", "Javier", "Alejandro", "Pablo", "Diego",
    "Sergio", "Álvaro", "Giuseppe", "Marco", "Luca", "Søren", "Lars", "Bjørn", "Magnus", "Erik",
    "Sean", "Conor", "Raj", "Arjun", "Mohammed", "Omar", "Ali", "Wei", "Hiroshi", "Kenji",
    "Dmitri", "Ivan", "Piotr", "Łukasz", "Jamal", "DeShawn", "Mateo",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott",
    "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera",
    "Campbell", "Mitchell", "Carter", "Roberts", "Evans", "Turner", "Phillips", "Parker",
    "Edwards", "Collins", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper",
    "Peterson", "Reed", "Bailey", "Bell", "Kelly", "Howard", "Ward", "Cox", "Richardson", "Wood",
    "Watson", "Brooks", "Bennett", "Gray", "Hughes", "Price", "Sanders", "Patel", "Shah", "Khan",
    "O'Brien", "O'Connor", "McDonald", "MacLeod", "Walsh", "Byrne", "Murray", "Davies", "Jenkins",
    "Lloyd", "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Weiß", "Köhler",
    "Jäger", "Böhm", "Günther", "Bernard", "Dubois", "Petit", "Durand", "Leroy", "Moreau", "Simon",
    "Laurent", "Lefèvre", "Michel", "Fontaine", "Chevalier", "Rousseau", "Girard", "Bonnet",
    "Lambert", "Faure", "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker",
    "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Hendriks",
    "van Leeuwen", "Dekker", "García", "Fernández", "González", "Rodríguez", "López", "Martínez",
    "Sánchez", "Pérez", "Gómez", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz",
    "Álvarez", "Romero", "Navarro", "Ødegaard", "Johansen", "Hansen", "Nilsson", "Lindqvist",
    "Åberg", "Kowalski", "Nowak", "Wiśniewski", "Dvořák", "Novák", "Rossi", "Russo", "Ferrari",
    "Esposito", "Bianchi", "Romano", "Tanaka", "Suzuki", "Kim", "Park", "Chen", "Wang", "Li",
    "Zhang", "Singh", "Kumar", "Ivanov", "Smith-Jones", "Fitzgerald", "Ng", "Okafor", "Mensah",
    "Nuñez",
];

/// Formal first name → nicknames a duplicate record may use instead.
const NICKNAMES: &[(&str, &[&str])] = &[
    ("Robert", &["Bob", "Rob", "Bobby"]),
    ("William", &["Bill", "Will", "Billy"]),
    ("Elizabeth", &["Liz", "Beth", "Lisa"]),
    ("Katherine", &["Kate", "Kathy", "Katie"]),
    ("Michael", &["Mike", "Mick"]),
    ("James", &["Jim", "Jimmy"]),
    ("John", &["Jack", "Johnny"]),
    ("Richard", &["Rick", "Dick", "Rich"]),
    ("Thomas", &["Tom", "Tommy"]),
    ("Christopher", &["Chris"]),
    ("Daniel", &["Dan", "Danny"]),
    ("Matthew", &["Matt"]),
    ("Anthony", &["Tony"]),
    ("Joseph", &["Joe", "Joey"]),
    ("Charles", &["Charlie", "Chuck"]),
    ("Edward", &["Ed", "Ted", "Eddie"]),
    ("Benjamin", &["Ben"]),
    ("Samuel", &["Sam"]),
    ("Alexander", &["Alex", "Sasha"]),
    ("Nicholas", &["Nick"]),
    ("Andrew", &["Andy", "Drew"]),
    ("Timothy", &["Tim"]),
    ("Steven", &["Steve"]),
    ("Jonathan", &["Jon"]),
    ("Jennifer", &["Jen", "Jenny"]),
    ("Margaret", &["Maggie", "Peggy", "Meg"]),
    ("Patricia", &["Pat", "Patty", "Trish"]),
    ("Susan", &["Sue", "Susie"]),
    ("Deborah", &["Deb", "Debbie"]),
    ("Rebecca", &["Becky", "Becca"]),
    ("Jessica", &["Jess"]),
    ("Victoria", &["Vicky", "Tori"]),
    ("Alexandra", &["Alex", "Sasha"]),
    ("Samantha", &["Sam"]),
    ("Johannes", &["Hans", "Jo"]),
    ("Katharina", &["Kathi", "Kati"]),
    ("Stephanie", &["Steffi", "Steph"]),
    ("Francisco", &["Paco", "Curro"]),
    ("José", &["Pepe"]),
    ("Giuseppe", &["Beppe"]),
    ("Wilhelm", &["Willi"]),
    ("Maximilian", &["Max"]),
];

/// A country: how it is written, its phone numbers, addresses and mail hosts.
struct Country {
    code: &'static str,
    /// Relative share of people.
    weight: u32,
    /// Ways the country is written; the first (the ISO code) is the most common.
    spellings: &'static [&'static str],
    currency: &'static str,
    /// Offset used when a timestamp is written with the local offset.
    utc_offset_min: i32,
    phone_cc: &'static str,
    /// National trunk prefix ("0" in most of Europe).
    trunk: &'static str,
    /// Leading digits of the national significant number.
    phone_prefixes: &'static [&'static str],
    /// Digits of the national significant number, prefix included.
    nsn_len: usize,
    /// Digit groups of the national number as usually printed.
    groups: &'static [usize],
    /// "12 Main St" (true) or "Hauptstraße 12" (false).
    number_first: bool,
    streets: &'static [&'static str],
    /// City and postcode pattern (`#` digit, `@` capital letter).
    cities: &'static [(&'static str, &'static str)],
    /// Local mail providers (besides the global ones).
    domains: &'static [&'static str],
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        weight: 35,
        spellings: &[
            "US",
            "USA",
            "United States",
            "u.s.",
            "America",
            "United States of America",
            "us",
        ],
        currency: "USD",
        utc_offset_min: -300,
        phone_cc: "1",
        trunk: "",
        phone_prefixes: &[
            "212", "415", "312", "617", "206", "512", "303", "404", "305", "503",
        ],
        nsn_len: 10,
        groups: &[3, 3, 4],
        number_first: true,
        streets: &[
            "Main St",
            "Oak Avenue",
            "Maple Street",
            "Pine St",
            "Cedar Lane",
            "Elm Street",
            "Washington Blvd",
            "Lake View Dr",
            "Sunset Blvd",
            "Park Avenue",
            "2nd Street",
            "Broadway",
        ],
        cities: &[
            ("New York", "100##"),
            ("San Francisco", "941##"),
            ("Chicago", "606##"),
            ("Boston", "021##"),
            ("Seattle", "981##"),
            ("Austin", "787##"),
            ("Denver", "802##"),
            ("Atlanta", "303##"),
            ("Miami", "331##"),
            ("Portland", "972##"),
        ],
        domains: &["aol.com", "comcast.net"],
    },
    Country {
        code: "GB",
        weight: 12,
        spellings: &[
            "GB",
            "UK",
            "United Kingdom",
            "Great Britain",
            "England",
            "U.K.",
        ],
        currency: "GBP",
        utc_offset_min: 60,
        phone_cc: "44",
        trunk: "0",
        phone_prefixes: &["7700", "7911", "7400", "7520", "7810"],
        nsn_len: 10,
        groups: &[4, 6],
        number_first: true,
        streets: &[
            "High Street",
            "Station Road",
            "Church Lane",
            "Victoria Road",
            "Green Lane",
            "Manor Road",
            "Park Road",
            "King's Road",
            "Queen Street",
            "Mill Lane",
        ],
        cities: &[
            ("London", "SW1A #@@"),
            ("Manchester", "M1 #@@"),
            ("Birmingham", "B2 #@@"),
            ("Leeds", "LS1 #@@"),
            ("Edinburgh", "EH1 #@@"),
            ("Glasgow", "G2 #@@"),
            ("Bristol", "BS1 #@@"),
            ("Cardiff", "CF10 #@@"),
            ("Liverpool", "L1 #@@"),
        ],
        domains: &["btinternet.com", "yahoo.co.uk", "sky.com"],
    },
    Country {
        code: "DE",
        weight: 15,
        spellings: &["DE", "Germany", "Deutschland", "germany", "GER", "D"],
        currency: "EUR",
        utc_offset_min: 120,
        phone_cc: "49",
        trunk: "0",
        phone_prefixes: &["151", "152", "160", "170", "171", "176", "177"],
        nsn_len: 11,
        groups: &[3, 8],
        number_first: false,
        streets: &[
            "Hauptstraße",
            "Schulstraße",
            "Gartenstraße",
            "Bahnhofstraße",
            "Dorfstraße",
            "Bergstraße",
            "Lindenstraße",
            "Kirchweg",
            "Goethestraße",
            "Schillerstraße",
            "Am Markt",
        ],
        cities: &[
            ("Berlin", "10###"),
            ("Hamburg", "20###"),
            ("München", "80###"),
            ("Köln", "50###"),
            ("Frankfurt am Main", "60###"),
            ("Stuttgart", "70###"),
            ("Düsseldorf", "40###"),
            ("Leipzig", "04###"),
        ],
        domains: &["web.de", "gmx.de", "t-online.de"],
    },
    Country {
        code: "FR",
        weight: 10,
        spellings: &["FR", "France", "france", "FRA", "République française"],
        currency: "EUR",
        utc_offset_min: 120,
        phone_cc: "33",
        trunk: "0",
        phone_prefixes: &["6", "7"],
        nsn_len: 9,
        groups: &[1, 2, 2, 2, 2],
        number_first: true,
        streets: &[
            "Rue de la Paix",
            "Rue Victor Hugo",
            "Avenue des Champs-Élysées",
            "Boulevard Saint-Michel",
            "Rue de la République",
            "Place de la Mairie",
            "Rue du Moulin",
            "Avenue Jean Jaurès",
            "Rue Pasteur",
        ],
        cities: &[
            ("Paris", "750##"),
            ("Lyon", "6900#"),
            ("Marseille", "130##"),
            ("Toulouse", "310##"),
            ("Nice", "060##"),
            ("Nantes", "440##"),
            ("Strasbourg", "670##"),
            ("Bordeaux", "330##"),
        ],
        domains: &["orange.fr", "free.fr", "laposte.net"],
    },
    Country {
        code: "NL",
        weight: 7,
        spellings: &[
            "NL",
            "Netherlands",
            "Holland",
            "The Netherlands",
            "Nederland",
        ],
        currency: "EUR",
        utc_offset_min: 120,
        phone_cc: "31",
        trunk: "0",
        phone_prefixes: &["6"],
        nsn_len: 9,
        groups: &[1, 8],
        number_first: false,
        streets: &[
            "Hoofdstraat",
            "Kerkstraat",
            "Dorpsstraat",
            "Molenweg",
            "Prinsengracht",
            "Keizersgracht",
            "Stationsweg",
            "Julianalaan",
            "Beatrixstraat",
        ],
        cities: &[
            ("Amsterdam", "10## @@"),
            ("Rotterdam", "30## @@"),
            ("Den Haag", "25## @@"),
            ("Utrecht", "35## @@"),
            ("Eindhoven", "56## @@"),
            ("Groningen", "97## @@"),
        ],
        domains: &["ziggo.nl", "kpnmail.nl"],
    },
    Country {
        code: "ES",
        weight: 8,
        spellings: &["ES", "Spain", "España", "Espana", "spain", "ESP"],
        currency: "EUR",
        utc_offset_min: 120,
        phone_cc: "34",
        trunk: "",
        phone_prefixes: &["6"],
        nsn_len: 9,
        groups: &[3, 3, 3],
        number_first: false,
        streets: &[
            "Calle Mayor",
            "Calle Real",
            "Gran Vía",
            "Avenida de la Constitución",
            "Calle del Sol",
            "Plaza de España",
            "Calle de Alcalá",
            "Paseo de Gracia",
            "Calle San Juan",
        ],
        cities: &[
            ("Madrid", "280##"),
            ("Barcelona", "080##"),
            ("Valencia", "460##"),
            ("Sevilla", "410##"),
            ("Málaga", "290##"),
            ("Bilbao", "480##"),
            ("Zaragoza", "500##"),
            ("Córdoba", "140##"),
        ],
        domains: &["telefonica.net", "yahoo.es"],
    },
    Country {
        code: "CA",
        weight: 7,
        spellings: &["CA", "Canada", "CAN", "canada"],
        currency: "USD",
        utc_offset_min: -300,
        phone_cc: "1",
        trunk: "",
        phone_prefixes: &["416", "604", "514", "403", "613", "418"],
        nsn_len: 10,
        groups: &[3, 3, 4],
        number_first: true,
        streets: &[
            "Yonge Street",
            "King Street West",
            "Rue Sainte-Catherine",
            "Granville Street",
            "Maple Avenue",
            "Bay Street",
            "Queen Street",
            "Elgin Street",
        ],
        cities: &[
            ("Toronto", "M5V #@#"),
            ("Vancouver", "V6B #@#"),
            ("Montréal", "H2X #@#"),
            ("Calgary", "T2P #@#"),
            ("Ottawa", "K1P #@#"),
            ("Québec", "G1R #@#"),
        ],
        domains: &["rogers.com", "shaw.ca"],
    },
    Country {
        code: "AU",
        weight: 6,
        spellings: &["AU", "Australia", "AUS", "australia"],
        currency: "USD",
        utc_offset_min: 600,
        phone_cc: "61",
        trunk: "0",
        phone_prefixes: &["4"],
        nsn_len: 9,
        groups: &[3, 3, 3],
        number_first: true,
        streets: &[
            "George Street",
            "Collins Street",
            "Queen Street",
            "Hay Street",
            "King William Street",
            "Pitt Street",
            "Bourke Street",
            "Beach Road",
        ],
        cities: &[
            ("Sydney", "20##"),
            ("Melbourne", "30##"),
            ("Brisbane", "40##"),
            ("Perth", "60##"),
            ("Adelaide", "50##"),
            ("Canberra", "26##"),
        ],
        domains: &["bigpond.com", "optusnet.com.au"],
    },
];

/// Mail providers used everywhere, with weights (gmail is common on purpose).
const GLOBAL_DOMAINS: &[(&str, u32)] = &[
    ("gmail.com", 40),
    ("yahoo.com", 8),
    ("outlook.com", 10),
    ("hotmail.com", 8),
    ("icloud.com", 6),
];

/// Employers' domains for a duplicate record registered with a work address.
const WORK_DOMAINS: &[&str] = &[
    "acme-corp.com",
    "globex.com",
    "initech.com",
    "umbrella.co",
    "example.org",
];

const JUNK_EMAILS: &[&str] = &[
    "test@test.com",
    "unknown",
    "N/A",
    "none@none.com",
    "x@x.x",
    "-",
];
const JUNK_PHONES: &[&str] = &["000-000-0000", "unknown", "N/A", "0", "123456789", "-"];
const JUNK_NAMES: &[&str] = &["Test", "unknown", "N/A", "xxx"];
const GMAIL_TAGS: &[&str] = &["shop", "news", "promo", "orders", "spam", "2024"];

/// Lifecycle status with weight.
const LIFECYCLE: &[(&str, u32)] = &[
    ("lead", 10),
    ("prospect", 15),
    ("active", 50),
    ("lapsed", 15),
    ("churned", 10),
];
const LOYALTY_TIERS: &[(&str, u32)] = &[
    ("", 35),
    ("Bronze", 30),
    ("Silver", 20),
    ("Gold", 11),
    ("Platinum", 4),
];
const OPT_IN_SPELLINGS: &[(&str, &str)] = &[
    ("true", "false"),
    ("yes", "no"),
    ("Y", "N"),
    ("1", "0"),
    ("TRUE", "FALSE"),
];
/// Street-type words a duplicate record may abbreviate.
const STREET_ABBREVIATIONS: &[(&str, &str)] = &[
    ("Street", "St."),
    ("Avenue", "Ave"),
    ("Road", "Rd"),
    ("Lane", "Ln"),
    ("straße", "str."),
    ("Boulevard", "Blvd"),
    ("Calle", "C/"),
];

/// A catalogue product: id, name, category, price in USD.
struct Product {
    id: &'static str,
    name: &'static str,
    category: &'static str,
    price_usd: f64,
}

const fn product(
    id: &'static str,
    name: &'static str,
    category: &'static str,
    price_usd: f64,
) -> Product {
    Product {
        id,
        name,
        category,
        price_usd,
    }
}

const PRODUCTS: &[Product] = &[
    product("P101", "Trail Running Shoe", "Shoes", 129.0),
    product("P102", "Leather Sneaker", "Shoes", 89.5),
    product("P103", "Rain Boot", "Shoes", 59.99),
    product("P104", "Wool Slipper", "Shoes", 34.99),
    product("P105", "Hiking Boot", "Shoes", 149.0),
    product("P106", "Canvas Espadrille", "Shoes", 39.0),
    product("P107", "Sandal", "Shoes", 45.0),
    product("P108", "Merino T-Shirt", "Apparel", 49.0),
    product("P109", "Rain Jacket", "Apparel", 179.0),
    product("P110", "Denim Jeans", "Apparel", 79.9),
    product("P111", "Hoodie", "Apparel", 64.0),
    product("P112", "Linen Shirt", "Apparel", 55.0),
    product("P113", "Down Vest", "Apparel", 119.0),
    product("P114", "Socks 3-Pack", "Apparel", 14.99),
    product("P115", "Wireless Earbuds", "Electronics", 129.99),
    product("P116", "Smart Watch", "Electronics", 249.0),
    product("P117", "Bluetooth Speaker", "Electronics", 89.0),
    product("P118", "USB-C Charger", "Electronics", 24.99),
    product("P119", "E-Reader", "Electronics", 139.0),
    product("P120", "Noise-Cancelling Headphones", "Electronics", 299.0),
    product("P121", "Power Bank", "Electronics", 39.99),
    product("P122", "Espresso Maker", "Home", 199.0),
    product("P123", "Cast Iron Pan", "Home", 49.99),
    product("P124", "Linen Bedding Set", "Home", 159.0),
    product("P125", "Scented Candle", "Home", 19.5),
    product("P126", "Ceramic Mug Set", "Home", 32.0),
    product("P127", "Desk Lamp", "Home", 69.0),
    product("P128", "Throw Blanket", "Home", 54.0),
    product("P129", "Face Serum", "Beauty", 42.0),
    product("P130", "Shampoo Bar", "Beauty", 12.5),
    product("P131", "Sunscreen SPF 50", "Beauty", 18.99),
    product("P132", "Perfume 50ml", "Beauty", 89.0),
    product("P133", "Lip Balm", "Beauty", 6.99),
    product("P134", "Hand Cream", "Beauty", 11.0),
    product("P135", "Yoga Mat", "Sports", 39.0),
    product("P136", "Dumbbell Set", "Sports", 89.99),
    product("P137", "Cycling Helmet", "Sports", 74.0),
    product("P138", "Tennis Racket", "Sports", 119.0),
    product("P139", "Water Bottle", "Sports", 22.0),
    product("P140", "Running Belt", "Sports", 17.5),
    product("P141", "Swim Goggles", "Sports", 15.99),
    product("P142", "Cookbook: Everyday Pasta", "Books", 29.95),
    product("P143", "Novel: The Quiet Harbour", "Books", 16.99),
    product("P144", "Guide: Hiking the Alps", "Books", 24.0),
    product("P145", "Children's Atlas", "Books", 19.99),
    product("P146", "Notebook A5", "Books", 9.5),
    product("P147", "Graphic Novel Vol. 1", "Books", 14.0),
    product("P148", "Building Blocks 500pcs", "Toys", 49.99),
    product("P149", "Plush Bear", "Toys", 21.0),
    product("P150", "Puzzle 1000pcs", "Toys", 18.0),
    product("P151", "Remote Control Car", "Toys", 59.0),
    product("P152", "Board Game: Harbour Traders", "Toys", 39.95),
    product("P153", "Wooden Train Set", "Toys", 64.0),
    product("P154", "Kite", "Toys", 25.0),
    product("P155", "Gift Card 25", "Gift Cards", 25.0),
    product("P156", "Gift Card 50", "Gift Cards", 50.0),
    product("P157", "Gift Card 100", "Gift Cards", 100.0),
    product("P158", "Gift Wrap Service", "Gift Cards", 4.99),
    product("P159", "Travel Backpack", "Apparel", 99.0),
    product("P160", "Robot Vacuum", "Electronics", 349.0),
];

const CATEGORY_SLUGS: &[&str] = &[
    "shoes",
    "apparel",
    "electronics",
    "home",
    "beauty",
    "sports",
    "books",
    "toys",
    "gift-cards",
];
const SEARCH_TERMS: &[&str] = &[
    "shoes",
    "gift",
    "headphones",
    "yoga",
    "lamp",
    "jacket",
    "puzzle",
    "sale",
];

/// Canonical web events and the spellings different SDKs and teams use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    PageView,
    Click,
    SessionStart,
    SignUp,
    Login,
    AddToCart,
    Checkout,
    Purchase,
    /// Rare events no mapping knows about.
    Unknown,
    /// A Segment `identify` call (no event name).
    Identify,
}

impl EventKind {
    fn spellings(self) -> &'static [&'static str] {
        match self {
            EventKind::PageView => &[
                "Page View",
                "page_view",
                "pageview",
                "Page Viewed",
                "PAGE_VIEW",
            ],
            EventKind::Click => &["click", "Click", "button_click"],
            EventKind::SessionStart => &["session_start", "Session Started", "sessionStart"],
            EventKind::SignUp => &["Sign Up", "signup", "Signed Up"],
            EventKind::Login => &["Login", "log_in", "Logged In"],
            EventKind::AddToCart => &["Add To Cart", "add-to-cart", "Product Added"],
            EventKind::Checkout => &["Checkout Started", "checkout"],
            EventKind::Purchase => &["Order Completed", "purchase", "Purchase"],
            EventKind::Unknown => &["wishlist_share", "Video Played"],
            EventKind::Identify => &[],
        }
    }
}

const USER_AGENTS_MOBILE: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36",
    "ShopApp/5.2.1 (iOS 17.4; iPhone15,2)",
    "ShopApp/5.1.0 (Android 14; Pixel 8)",
];
const USER_AGENTS_DESKTOP: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:124.0) Gecko/20100101 Firefox/124.0",
];
const USER_AGENTS_TABLET: &[&str] = &[
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
];

// ============================================================================
// Small random helpers
// ============================================================================

/// A uniformly chosen element. Only called with the non-empty tables above.
fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    debug_assert!(!items.is_empty());
    &items[rng.random_range(0..items.len().max(1))]
}

/// An element chosen with probability proportional to its weight. Only
/// called with the non-empty tables above.
fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    debug_assert!(!items.is_empty());
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(item, weight) in items {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    items[items.len() - 1].0
}

/// A factor with mean 1 and a long right tail (log-normal, σ = `sigma`):
/// many light users, a few heavy ones.
fn activity_factor(rng: &mut ChaCha8Rng, sigma: f64) -> f64 {
    // Box–Muller; 1 - u is in (0, 1] so the logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (sigma * normal - sigma * sigma / 2.0).exp()
}

/// `x` rounded up or down at random so that the mean is preserved.
fn stochastic_round(rng: &mut ChaCha8Rng, x: f64) -> u64 {
    let x = x.max(0.0);
    let floor = x.floor();
    let up = rng.random_bool((x - floor).clamp(0.0, 1.0));
    floor as u64 + u64::from(up)
}

fn random_hex(rng: &mut ChaCha8Rng, digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        let _ = write!(out, "{:016x}", rng.random::<u64>());
    }
    out.truncate(digits);
    out
}

fn random_digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Fill a pattern: `#` becomes a digit, `@` a capital letter.
fn fill_pattern(rng: &mut ChaCha8Rng, pattern: &str) -> String {
    const LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    pattern
        .chars()
        .map(|c| match c {
            '#' => char::from(b'0' + rng.random_range(0..10u8)),
            '@' => char::from(*pick(rng, LETTERS)),
            other => other,
        })
        .collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A keyed bijection of `0..2^bits` (`bits` in 2..=40): rounds of an odd
/// multiplication plus key and a right xorshift, each invertible mod `2^bits`.
fn mix(mut x: u64, bits: u32, key: u64) -> u64 {
    let mask = (1u64 << bits) - 1;
    for round in 0..4u64 {
        let k = key.rotate_left(16 * round as u32) ^ round;
        x = (x.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(k)) & mask;
        x ^= x >> (bits / 2 + 1);
    }
    x
}

/// A scrambled but unique number in `offset..offset + space` for each
/// `counter < space` (`space <= 2^bits`), so that ids given out one after the
/// other look unrelated. Cycle walking keeps the permutation inside `space`;
/// it ends because the walk returns to `counter` itself at the latest. Beyond
/// `space`, a longer unique number above the range.
fn scrambled(counter: u64, space: u64, bits: u32, key: u64, offset: u64) -> u64 {
    if counter >= space {
        return offset + space + counter;
    }
    let mut x = counter;
    loop {
        x = mix(x, bits, key);
        if x < space {
            return offset + x;
        }
    }
}

// ============================================================================
// Text noise
// ============================================================================

/// One keyboard slip: a substituted, swapped, dropped or doubled letter. The
/// first letter is kept.
fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return format!("{s}{}", chars.last().copied().unwrap_or('x'));
    }
    let i = rng.random_range(1..chars.len());
    match rng.random_range(0..4) {
        0 => {
            let c = char::from(b'a' + rng.random_range(0..26u8));
            chars[i] = if chars[i].is_uppercase() {
                c.to_ascii_uppercase()
            } else {
                c
            };
        }
        1 => {
            let i = i.max(2);
            chars.swap(i - 1, i);
        }
        2 => {
            chars.remove(i);
        }
        _ => {
            let c = chars[i];
            chars.insert(i, c);
        }
    }
    chars.into_iter().collect()
}

/// Case and whitespace noise: "  JOHN ", "smith", "Anna  ".
fn case_noise(rng: &mut ChaCha8Rng, s: &str) -> String {
    match rng.random_range(0..6) {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        2 => format!("  {} ", s.to_uppercase()),
        3 => format!("{s}  "),
        4 => format!(" {}", s.to_lowercase()),
        _ => s.replace(' ', "  "),
    }
}

/// Lower-case ASCII for e-mail local parts: "Müller" → "muller", "O'Brien" →
/// "obrien".
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded: &str = match c {
            'a'..='z' | '0'..='9' => {
                out.push(c);
                continue;
            }
            'ä' | 'á' | 'à' | 'â' | 'å' | 'ã' => "a",
            'æ' => "ae",
            'ç' | 'č' => "c",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ł' => "l",
            'ñ' => "n",
            'ö' | 'ó' | 'ò' | 'ô' | 'ø' | 'õ' => "o",
            'ř' => "r",
            'ś' | 'š' => "s",
            'ß' => "ss",
            'ü' | 'ú' | 'ù' | 'û' => "u",
            'ž' | 'ź' | 'ż' => "z",
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

/// The same mailbox written differently: gmail dots, `+tags`, googlemail,
/// upper case, stray spaces.
fn email_variant(rng: &mut ChaCha8Rng, email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return email.to_uppercase();
    };
    if domain == "gmail.com" {
        let mut local = local.to_string();
        let style = rng.random_range(0..5);
        if style != 1 {
            // Dots anywhere between letters are ignored by gmail.
            let chars: Vec<char> = local.chars().collect();
            if chars.len() >= 3 {
                let at = rng.random_range(1..chars.len());
                if chars[at - 1] != '.' && chars[at] != '.' {
                    let mut dotted: String = chars[..at].iter().collect();
                    dotted.push('.');
                    dotted.extend(&chars[at..]);
                    local = dotted;
                }
            }
        }
        if style != 0 {
            let tag = pick(rng, GMAIL_TAGS);
            local = format!("{local}+{tag}");
        }
        let domain = if style == 4 { "googlemail.com" } else { domain };
        let out = format!("{local}@{domain}");
        if rng.random_bool(0.15) {
            out.to_uppercase()
        } else {
            out
        }
    } else {
        match rng.random_range(0..3) {
            0 => email.to_uppercase(),
            1 => {
                let mut chars = email.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            _ => format!(" {email} "),
        }
    }
}

// ============================================================================
// People
// ============================================================================

/// A phone number: country and national significant number (digits only).
#[derive(Debug, Clone)]
struct Phone {
    country: usize,
    nsn: String,
}

impl Phone {
    fn random(rng: &mut ChaCha8Rng, country: usize) -> Phone {
        let c = &COUNTRIES[country];
        let prefix = *pick(rng, c.phone_prefixes);
        let mut nsn = String::with_capacity(c.nsn_len);
        nsn.push_str(prefix);
        if nsn.len() < c.nsn_len {
            nsn.push(char::from(b'2' + rng.random_range(0..8u8)));
        }
        let rest = c.nsn_len.saturating_sub(nsn.len());
        nsn.push_str(&random_digits(rng, rest));
        Phone { country, nsn }
    }

    /// The national number split into `sizes`; leftover digits form a last group.
    fn groups(&self, sizes: &[usize]) -> Vec<String> {
        let digits: Vec<char> = self.nsn.chars().collect();
        let mut out = Vec::new();
        let mut at = 0;
        for &size in sizes {
            if at >= digits.len() {
                break;
            }
            let end = (at + size).min(digits.len());
            out.push(digits[at..end].iter().collect());
            at = end;
        }
        if at < digits.len() {
            out.push(digits[at..].iter().collect());
        }
        out
    }

    /// One of the many ways people type this number.
    fn format(&self, rng: &mut ChaCha8Rng) -> String {
        let c = &COUNTRIES[self.country];
        let groups = self.groups(c.groups);
        let spaced = groups.join(" ");
        let (cc, trunk, nsn) = (c.phone_cc, c.trunk, &self.nsn);
        match rng.random_range(0..10) {
            0 | 1 => format!("+{cc} {spaced}"),
            2 => format!("+{cc}{nsn}"),
            3 => format!("00{cc}{nsn}"),
            4 | 5 => format!("{trunk}{spaced}"),
            6 => format!("{trunk}{nsn}"),
            _ => match c.phone_cc {
                "1" => match rng.random_range(0..4) {
                    0 => format!(
                        "({}) {}",
                        groups.first().map_or("", |g| g),
                        groups[1..].join("-")
                    ),
                    1 => groups.join("."),
                    2 => groups.join("-"),
                    _ => format!("1-{}", groups.join("-")),
                },
                "49" => match rng.random_range(0..2) {
                    0 => format!("+49 (0){spaced}"),
                    _ => format!("0{}", groups.join("/")),
                },
                _ => format!("{trunk}{}", groups.join("-")),
            },
        }
    }
}

/// A postal address.
#[derive(Debug, Clone)]
struct Address {
    street: String,
    city: &'static str,
    postcode: String,
}

impl Address {
    fn random(rng: &mut ChaCha8Rng, country: usize) -> Address {
        let c = &COUNTRIES[country];
        let street = *pick(rng, c.streets);
        let number = rng.random_range(1..=220);
        let street = if c.number_first {
            format!("{number} {street}")
        } else {
            format!("{street} {number}")
        };
        let (city, pattern) = *pick(rng, c.cities);
        Address {
            street,
            city,
            postcode: fill_pattern(rng, pattern),
        }
    }
}

/// What a household head passes on to the next person (who lives with them).
struct Household {
    country: usize,
    address: Address,
    last: Option<&'static str>,
    landline: Option<Phone>,
    head_first: &'static str,
}

/// A true individual.
struct Person {
    index: u64,
    person_id: String,
    gender: Gender,
    first: &'static str,
    last: &'static str,
    /// Year, month, day.
    birth: (i32, u32, u32),
    country: usize,
    address: Address,
    email: String,
    phone: Phone,
    /// When the first CRM record was created (epoch ms).
    created_ms: i64,
    status: &'static str,
    tier: &'static str,
    opt_in: bool,
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Remembers which e-mail addresses are taken (a 16 Mbit hash bitmap), so
/// that different people get different mailboxes without keeping a set of all
/// addresses. A false "taken" only makes an address longer.
struct EmailRegistry {
    bits: Vec<u64>,
}

impl EmailRegistry {
    const BITS: u64 = 1 << 24;

    fn new() -> Self {
        EmailRegistry {
            bits: vec![0; (Self::BITS / 64) as usize],
        }
    }

    fn slot(email: &str) -> (usize, u64) {
        // FNV-1a: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in email.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let bit = h % Self::BITS;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    /// Marks `email` as taken; false if it (probably) already was. Gmail
    /// ignores dots in the local part, so `a.b@gmail.com` and `ab@gmail.com`
    /// are one mailbox and cannot belong to two people.
    fn claim(&mut self, email: &str) -> bool {
        let canonical = match email.split_once('@') {
            Some((local, "gmail.com")) => format!("{}@gmail.com", local.replace('.', "")),
            _ => email.to_string(),
        };
        let (word, mask) = Self::slot(&canonical);
        let Some(w) = self.bits.get_mut(word) else {
            return false;
        };
        let free = *w & mask == 0;
        *w |= mask;
        free
    }

    /// A fresh address for this name at `domain`. Addresses ending in
    /// `.<digits>` are reserved for the collision fallback, which appends the
    /// person's unique index.
    fn make(
        &mut self,
        rng: &mut ChaCha8Rng,
        first: &str,
        last: &str,
        birth_year: i32,
        domain: &str,
        index: u64,
    ) -> String {
        let (f, l) = (ascii_fold(first), ascii_fold(last));
        let initial = f.chars().next().map(String::from).unwrap_or_default();
        let mut local = match rng.random_range(0..7) {
            0 | 1 => format!("{f}.{l}"),
            2 => format!("{f}{l}"),
            3 => format!("{initial}{l}"),
            4 => format!("{f}_{l}"),
            5 => format!("{l}.{f}"),
            _ => format!(
                "{f}{}",
                l.chars().next().map(String::from).unwrap_or_default()
            ),
        };
        if rng.random_bool(0.6) {
            if rng.random_bool(0.5) {
                let _ = write!(local, "{:02}", birth_year.rem_euclid(100));
            } else {
                let _ = write!(local, "{}", rng.random_range(1..1000));
            }
        }
        let email = format!("{local}@{domain}");
        if self.claim(&email) {
            return email;
        }
        let email = format!("{local}.{}@{domain}", index + 1);
        self.claim(&email);
        email
    }
}

// ============================================================================
// Timestamps
// ============================================================================

/// How a timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeStyle {
    /// `2024-05-01T10:00:00.123Z`
    IsoMillisZ,
    /// `2024-03-05T10:15:00Z`
    IsoZ,
    /// `2024-05-01T12:00:00+02:00` (the country's offset)
    IsoOffset,
    /// `2024-05-01 10:00:00` (UTC wall clock)
    NaiveSpace,
    /// `05/01/2024 10:00` (UTC wall clock, month first)
    UsSlash,
    /// `1709633700` (a string)
    EpochSeconds,
    /// `1714557600123` (a JSON number in web events, else a string)
    EpochMillis,
    /// `Wed, 01 May 2024 10:00:00 +0000`
    Rfc2822,
}

const CRM_TIME_STYLES: &[(TimeStyle, u32)] = &[
    (TimeStyle::IsoZ, 35),
    (TimeStyle::NaiveSpace, 25),
    (TimeStyle::UsSlash, 15),
    (TimeStyle::IsoOffset, 15),
    (TimeStyle::EpochSeconds, 10),
];
const WEB_TIME_STYLES: &[(TimeStyle, u32)] = &[
    (TimeStyle::IsoMillisZ, 60),
    (TimeStyle::IsoOffset, 12),
    (TimeStyle::NaiveSpace, 10),
    (TimeStyle::EpochMillis, 10),
    (TimeStyle::Rfc2822, 8),
];
const ORDER_TIME_STYLES: &[(TimeStyle, u32)] = &[
    (TimeStyle::IsoZ, 40),
    (TimeStyle::NaiveSpace, 20),
    (TimeStyle::IsoOffset, 12),
    (TimeStyle::UsSlash, 10),
    (TimeStyle::EpochSeconds, 10),
    (TimeStyle::IsoMillisZ, 8),
];

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Write instant `ms` in `style`; `offset_min` is used by [`TimeStyle::IsoOffset`].
fn format_time(ms: i64, style: TimeStyle, offset_min: i32) -> String {
    let t = utc(ms);
    let mut s = String::with_capacity(32);
    let (y, mo, d) = (t.year(), t.month(), t.day());
    let (h, mi, se) = (t.hour(), t.minute(), t.second());
    let _ = match style {
        TimeStyle::IsoMillisZ => write!(
            s,
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}.{:03}Z",
            ms.rem_euclid(1000)
        ),
        TimeStyle::IsoZ => write!(s, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z"),
        TimeStyle::IsoOffset => {
            let local = utc(ms + i64::from(offset_min) * 60_000);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let off = offset_min.unsigned_abs();
            write!(
                s,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
                local.year(),
                local.month(),
                local.day(),
                local.hour(),
                local.minute(),
                local.second(),
                off / 60,
                off % 60
            )
        }
        TimeStyle::NaiveSpace => write!(s, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{se:02}"),
        TimeStyle::UsSlash => write!(s, "{mo:02}/{d:02}/{y:04} {h:02}:{mi:02}"),
        TimeStyle::EpochSeconds => write!(s, "{}", ms.div_euclid(1000)),
        TimeStyle::EpochMillis => write!(s, "{ms}"),
        TimeStyle::Rfc2822 => write!(s, "{}", t.format("%a, %d %b %Y %H:%M:%S +0000")),
    };
    s
}

// ============================================================================
// Output sinks
// ============================================================================

/// Holds up to `cap` items and releases a random one for each new item once
/// full, so neighbours in the input end up far apart in the output.
struct ShuffleWindow<T> {
    items: Vec<T>,
    cap: usize,
    rng: ChaCha8Rng,
}

impl<T> ShuffleWindow<T> {
    fn new(cap: usize, rng: ChaCha8Rng) -> Self {
        ShuffleWindow {
            items: Vec::with_capacity(cap.min(1 << 16)),
            cap: cap.max(1),
            rng,
        }
    }

    /// Add `item`; returns the item that leaves the window, if any.
    fn push(&mut self, item: T) -> Option<T> {
        if self.items.len() < self.cap {
            self.items.push(item);
            return None;
        }
        let i = self.rng.random_range(0..self.items.len());
        Some(std::mem::replace(&mut self.items[i], item))
    }

    /// Everything still held, in random order.
    fn drain(&mut self) -> Vec<T> {
        let mut rest = std::mem::take(&mut self.items);
        // Fisher–Yates with the window's own generator.
        for i in (1..rest.len()).rev() {
            let j = self.rng.random_range(0..=i);
            rest.swap(i, j);
        }
        rest
    }
}

/// A line-oriented output file behind a shuffle window.
struct LineSink {
    path: PathBuf,
    out: BufWriter<File>,
    window: ShuffleWindow<Vec<u8>>,
    rows: u64,
}

impl LineSink {
    fn create(path: PathBuf, header: Option<&[u8]>, rng: ChaCha8Rng) -> Result<Self> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        if let Some(header) = header {
            out.write_all(header)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(LineSink {
            path,
            out,
            window: ShuffleWindow::new(SHUFFLE_WINDOW, rng),
            rows: 0,
        })
    }

    /// Queue one complete line (terminator included).
    fn push(&mut self, line: Vec<u8>) -> Result<()> {
        self.rows += 1;
        if let Some(out) = self.window.push(line) {
            self.out
                .write_all(&out)
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        for line in self.window.drain() {
            self.out
                .write_all(&line)
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self.rows)
    }
}

/// One row of `transactions.parquet`.
struct TxRow {
    order_id: Option<String>,
    customer_id: Option<String>,
    email: Option<String>,
    order_time: Option<String>,
    product: &'static Product,
    quantity: i64,
    unit_price: f64,
    currency: &'static str,
    revenue: Option<f64>,
    transaction_type: &'static str,
    channel: &'static str,
}

/// Column buffers for one parquet row group.
#[derive(Default)]
struct TxBatch {
    order_id: Vec<Option<String>>,
    customer_id: Vec<Option<String>>,
    email: Vec<Option<String>>,
    order_time: Vec<Option<String>>,
    product_id: Vec<&'static str>,
    product_name: Vec<&'static str>,
    category: Vec<&'static str>,
    quantity: Vec<i64>,
    unit_price: Vec<f64>,
    currency: Vec<&'static str>,
    revenue: Vec<Option<f64>>,
    transaction_type: Vec<&'static str>,
    channel: Vec<&'static str>,
}

impl TxBatch {
    fn len(&self) -> usize {
        self.order_id.len()
    }

    fn push(&mut self, row: TxRow) {
        self.order_id.push(row.order_id);
        self.customer_id.push(row.customer_id);
        self.email.push(row.email);
        self.order_time.push(row.order_time);
        self.product_id.push(row.product.id);
        self.product_name.push(row.product.name);
        self.category.push(row.product.category);
        self.quantity.push(row.quantity);
        self.unit_price.push(row.unit_price);
        self.currency.push(row.currency);
        self.revenue.push(row.revenue);
        self.transaction_type.push(row.transaction_type);
        self.channel.push(row.channel);
    }

    /// Move the buffered rows into a data frame (column order as
    /// [`TRANSACTION_COLUMNS`]).
    fn take_frame(&mut self) -> Result<DataFrame> {
        let b = std::mem::take(self);
        let height = b.order_id.len();
        let columns: Vec<Column> = vec![
            Series::new("order_id".into(), b.order_id).into(),
            Series::new("customer_id".into(), b.customer_id).into(),
            Series::new("email".into(), b.email).into(),
            Series::new("order_time".into(), b.order_time).into(),
            Series::new("product_id".into(), b.product_id).into(),
            Series::new("product_name".into(), b.product_name).into(),
            Series::new("category".into(), b.category).into(),
            Series::new("quantity".into(), b.quantity).into(),
            Series::new("unit_price".into(), b.unit_price).into(),
            Series::new("currency".into(), b.currency).into(),
            Series::new("revenue".into(), b.revenue).into(),
            Series::new("transaction_type".into(), b.transaction_type).into(),
            Series::new("channel".into(), b.channel).into(),
        ];
        DataFrame::new(height, columns).context("building a transactions batch")
    }
}

/// `transactions.parquet`: a shuffle window in front of batched row groups.
struct TxSink {
    path: PathBuf,
    writer: polars::prelude::BatchedWriter<File>,
    window: ShuffleWindow<TxRow>,
    batch: TxBatch,
    rows: u64,
}

impl TxSink {
    fn create(path: PathBuf, rng: ChaCha8Rng) -> Result<Self> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let schema = Schema::from_iter(
            TRANSACTION_COLUMNS
                .iter()
                .map(|(name, dtype)| Field::new((*name).into(), dtype.clone())),
        );
        let writer = ParquetWriter::new(file)
            .batched(&schema)
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(TxSink {
            path,
            writer,
            window: ShuffleWindow::new(ORDER_SHUFFLE_WINDOW, rng),
            batch: TxBatch::default(),
            rows: 0,
        })
    }

    fn push(&mut self, row: TxRow) -> Result<()> {
        self.rows += 1;
        if let Some(row) = self.window.push(row) {
            self.batch.push(row);
            if self.batch.len() >= PARQUET_BATCH {
                self.flush_batch()?;
            }
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.batch.len() == 0 {
            return Ok(());
        }
        let frame = self.batch.take_frame()?;
        self.writer
            .write_batch(&frame)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn finish(mut self) -> Result<u64> {
        for row in self.window.drain() {
            self.batch.push(row);
            if self.batch.len() >= PARQUET_BATCH {
                self.flush_batch()?;
            }
        }
        self.flush_batch()?;
        self.writer
            .finish()
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(self.rows)
    }
}

/// `truth.csv`, written in generation order (not shuffled).
struct TruthSink {
    out: csv::Writer<BufWriter<File>>,
    rows: u64,
}

impl TruthSink {
    fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
        out.write_record(["source", "record_id", "person_id"])
            .context("writing truth.csv")?;
        Ok(TruthSink { out, rows: 0 })
    }

    fn add(&mut self, source: &str, record_id: &str, person_id: &str) -> Result<()> {
        self.rows += 1;
        self.out
            .write_record([source, record_id, person_id])
            .context("writing truth.csv")
    }

    fn finish(mut self) -> Result<u64> {
        self.out.flush().context("writing truth.csv")?;
        Ok(self.rows)
    }
}

// ============================================================================
// Records
// ============================================================================

/// Column positions in [`CRM_COLUMNS`].
mod col {
    pub const ID: usize = 0;
    pub const FIRST: usize = 1;
    pub const LAST: usize = 2;
    pub const EMAIL: usize = 3;
    pub const PHONE: usize = 4;
    pub const BIRTH: usize = 5;
    pub const STREET: usize = 6;
    pub const CITY: usize = 7;
    pub const POSTCODE: usize = 8;
    pub const COUNTRY: usize = 9;
    pub const CREATED: usize = 11;
    pub const UPDATED: usize = 12;
}

/// The ways a CRM row is broken on purpose.
#[derive(Debug, Clone, Copy)]
enum CrmDefect {
    EmptyId,
    BadCreatedAt,
    ExtraField,
    MissingFields,
}

/// The ways a web event line is broken on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebDefect {
    Truncated,
    NoTimestamp,
    Yesterday,
    NoMessageId,
    JunkProperties,
}

/// The ways an order row is broken on purpose.
#[derive(Debug, Clone, Copy)]
enum OrderDefect {
    NoOrderId,
    BadTime,
    NoRevenue,
    NoCustomer,
}

/// The identifiers a person's CRM records left behind, for the other systems.
struct Identity {
    /// Customer ids of the person's CRM rows that have one (primary first).
    customer_ids: Vec<String>,
    /// Real mailboxes appearing on those rows (primary first).
    emails: Vec<String>,
}

impl Identity {
    /// A customer id to log in or order with: usually the primary one.
    fn pick_customer_id(&self, rng: &mut ChaCha8Rng) -> Option<String> {
        let primary = self.customer_ids.first()?;
        if self.customer_ids.len() == 1 || rng.random_bool(0.8) {
            Some(primary.clone())
        } else {
            Some(pick(rng, &self.customer_ids).clone())
        }
    }
}

/// A planned order, before it becomes parquet rows.
struct Order {
    order_id: String,
    customer_id: Option<String>,
    email: Option<String>,
    time_ms: i64,
    product: &'static Product,
    quantity: i64,
    unit_price: f64,
    revenue: f64,
    channel: &'static str,
}

/// A browser or app install: a device id and the cookies (anonymous ids) it
/// carried over time.
#[derive(Debug, Clone)]
struct Device {
    id: String,
    kind: &'static str,
    user_agent: &'static str,
    cookies: Vec<String>,
    time_style: TimeStyle,
}

/// The JSON shape of one web event (Segment / RudderStack spec).
#[derive(Serialize)]
struct EventLine<'a> {
    #[serde(rename = "messageId", skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(rename = "anonymousId")]
    anonymous_id: &'a str,
    #[serde(rename = "userId")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<JsonTime<'a>>,
    context: EventContext<'a>,
    properties: EventProperties<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<Traits<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonTime<'a> {
    Text(&'a str),
    Millis(i64),
}

#[derive(Serialize)]
struct EventContext<'a> {
    device: DeviceJson<'a>,
    page: PageJson<'a>,
    #[serde(rename = "userAgent")]
    user_agent: &'a str,
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct PageJson<'a> {
    url: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EventProperties<'a> {
    Object(PropertiesJson<'a>),
    Junk(&'a str),
}

#[derive(Serialize)]
struct PropertiesJson<'a> {
    session_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revenue: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
}

#[derive(Serialize)]
struct Traits<'a> {
    email: &'a str,
}

/// Per-session state while a session's events are written.
struct Session<'a> {
    person_id: &'a str,
    device: &'a Device,
    cookie: &'a str,
    session_id: String,
    user_id: Option<String>,
    t_ms: i64,
    offset_min: i32,
}

/// What one event carries beyond the session. `order` and `currency` only
/// show on checkout / purchase events, `email` only on `identify` calls.
#[derive(Default)]
struct EventExtras<'a> {
    product: Option<&'static Product>,
    order: Option<&'a Order>,
    currency: Option<&'static str>,
    email: Option<&'a str>,
    /// The event happens in the mobile app: page views may be `screen` calls.
    app: bool,
}

// ============================================================================
// The generator
// ============================================================================

/// All state of one [`generate`] run.
struct Generator {
    rng: ChaCha8Rng,
    opts: GenerateOptions,
    crm: LineSink,
    web: LineSink,
    tx: TxSink,
    truth: TruthSink,
    files: Vec<PathBuf>,
    emails: EmailRegistry,
    /// Recently created devices, some of which a later person shares.
    recent_devices: VecDeque<Device>,
    /// Key of the id scrambling (from the seed).
    id_key: u64,
    customer_seq: u64,
    /// Web events written beyond people's budgets, not yet paid back.
    event_overshoot: u64,
    order_seq: u64,
    refund_seq: u64,
    message_seq: u64,
    /// The next CRM row (by count) from which one is written as Latin-1.
    latin1_due: u64,
    people: u64,
}

impl Generator {
    fn new(opts: &GenerateOptions) -> Result<Self> {
        let stream =
            |k: u64| ChaCha8Rng::seed_from_u64(opts.seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut rng = stream(0);
        let crm_path = opts.out.join("crm.csv");
        let web_path = opts.out.join("web_events.ndjson");
        let tx_path = opts.out.join("transactions.parquet");
        let truth_path = opts.out.join("truth.csv");
        let header = encode_csv_line(&CRM_COLUMNS)?;
        let latin1_due = rng.random_range(10..120);
        let id_key = rng.random::<u64>();
        Ok(Generator {
            crm: LineSink::create(crm_path.clone(), Some(&header), stream(1))?,
            web: LineSink::create(web_path.clone(), None, stream(2))?,
            tx: TxSink::create(tx_path.clone(), stream(3))?,
            truth: TruthSink::create(&truth_path)?,
            files: vec![crm_path, web_path, tx_path, truth_path],
            rng,
            opts: opts.clone(),
            emails: EmailRegistry::new(),
            recent_devices: VecDeque::with_capacity(1024),
            id_key,
            customer_seq: 0,
            event_overshoot: 0,
            order_seq: 0,
            refund_seq: 0,
            message_seq: 0,
            latin1_due,
            people: 0,
        })
    }

    fn finish(self) -> Result<GenerateSummary> {
        Ok(GenerateSummary {
            people: self.people,
            crm_rows: self.crm.finish()?,
            web_rows: self.web.finish()?,
            transaction_rows: self.tx.finish()?,
            truth_rows: self.truth.finish()?,
            files: self.files,
        })
    }

    /// Generate person `index` and all their rows. Returns the household the
    /// next person joins, if this person heads one.
    fn person(&mut self, index: u64, household: Option<Household>) -> Result<Option<Household>> {
        let mut person = self.make_person(index, household);
        let next_household = if self.rng.random_bool(P_HOUSEHOLD) {
            // Some households give one shared landline instead of own mobiles.
            let landline = self
                .rng
                .random_bool(0.35)
                .then(|| Phone::random(&mut self.rng, person.country));
            if let Some(landline) = &landline {
                person.phone = landline.clone();
            }
            Some(Household {
                country: person.country,
                address: person.address.clone(),
                last: self.rng.random_bool(0.6).then_some(person.last),
                landline,
                head_first: person.first,
            })
        } else {
            None
        };
        let identity = self.write_crm(&person)?;
        let orders = self.plan_orders(&person, &identity);
        self.write_events(&person, &identity, &orders)?;
        self.write_orders(&person, &orders)?;
        self.people += 1;
        Ok(next_household)
    }

    fn make_person(&mut self, index: u64, household: Option<Household>) -> Person {
        let rng = &mut self.rng;
        let gender = if rng.random_bool(0.5) {
            Gender::Female
        } else {
            Gender::Male
        };
        let pool = match gender {
            Gender::Female => FEMALE_FIRST,
            Gender::Male => MALE_FIRST,
        };
        let mut first = *pick(rng, pool);
        if let Some(h) = &household {
            // Housemates are different people: never the head's first name.
            while first == h.head_first {
                first = *pick(rng, pool);
            }
        }
        let country = match &household {
            Some(h) => h.country,
            None => {
                let weighted: Vec<(usize, u32)> = COUNTRIES
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i, c.weight))
                    .collect();
                pick_weighted(rng, &weighted)
            }
        };
        let last = household
            .as_ref()
            .and_then(|h| h.last)
            .unwrap_or_else(|| *pick(rng, LAST_NAMES));
        let year = rng.random_range(1940..=2006);
        let month = rng.random_range(1..=12);
        let day = rng.random_range(1..=days_in_month(year, month));
        let address = match &household {
            Some(h) => h.address.clone(),
            None => Address::random(rng, country),
        };
        let phone = match household.as_ref().and_then(|h| h.landline.clone()) {
            Some(landline) => landline,
            None => Phone::random(rng, country),
        };
        let domain = if rng.random_bool(0.75) {
            pick_weighted(rng, GLOBAL_DOMAINS)
        } else {
            *pick(rng, COUNTRIES[country].domains)
        };
        let email = self.emails.make(rng, first, last, year, domain, index);
        let created_ms = rng.random_range(CRM_START_MS..WINDOW_END_MS - 30 * DAY_MS);
        Person {
            index,
            person_id: format!("P{:07}", index + 1),
            gender,
            first,
            last,
            birth: (year, month, day),
            country,
            address,
            email,
            phone,
            created_ms,
            status: pick_weighted(rng, LIFECYCLE),
            tier: pick_weighted(rng, LOYALTY_TIERS),
            opt_in: rng.random_bool(0.55),
        }
    }

    fn next_customer_id(&mut self) -> String {
        let n = scrambled(self.customer_seq, 9_000_000, 24, self.id_key, 1_000_000);
        self.customer_seq += 1;
        format!("C{n:07}")
    }

    // ------------------------------------------------------------------ CRM

    /// Write the person's CRM rows (1, or 2–3 with noise) and their truth rows.
    fn write_crm(&mut self, p: &Person) -> Result<Identity> {
        let records = if self.rng.random_bool(P_CRM_DUPLICATE) {
            self.rng.random_range(2..=3)
        } else {
            1
        };
        let mut identity = Identity {
            customer_ids: Vec::with_capacity(records),
            emails: Vec::with_capacity(records),
        };
        let mut married_last: Option<&'static str> = None;
        for k in 0..records {
            let (mut fields, clean_email) = self.crm_record(p, k > 0, &mut married_last);
            if let Some(email) = clean_email
                && !identity.emails.contains(&email)
            {
                identity.emails.push(email);
            }
            let defect =
                self.rng
                    .random_bool(P_CRM_INVALID)
                    .then(|| match self.rng.random_range(0..10) {
                        0..=2 => CrmDefect::EmptyId,
                        3..=5 => CrmDefect::BadCreatedAt,
                        6 | 7 => CrmDefect::ExtraField,
                        _ => CrmDefect::MissingFields,
                    });
            match defect {
                Some(CrmDefect::EmptyId) => fields[col::ID].clear(),
                Some(CrmDefect::BadCreatedAt) => {
                    let bad = if self.rng.random_bool(0.5) {
                        "not a date"
                    } else {
                        "2024-13-45"
                    };
                    fields[col::CREATED] = bad.to_string();
                }
                Some(CrmDefect::ExtraField) => fields.push("unexpected;extra".to_string()),
                Some(CrmDefect::MissingFields) => fields.truncate(self.rng.random_range(9..13)),
                None => {}
            }
            if !fields[col::ID].is_empty() {
                self.truth.add("crm", &fields[col::ID], &p.person_id)?;
                identity.customer_ids.push(fields[col::ID].clone());
            }
            let mut line = encode_csv_line(&fields)?;
            if self.crm.rows >= self.latin1_due
                && let Some(latin1) = latin1_bytes(&line)
            {
                line = latin1;
                self.latin1_due = self.crm.rows + self.rng.random_range(10_000..30_000);
            }
            self.crm.push(line)?;
        }
        Ok(identity)
    }

    /// The 15 fields of one CRM record and the real mailbox on it (if any).
    /// Duplicates get 1–3 kinds of noise; every record gets format noise.
    fn crm_record(
        &mut self,
        p: &Person,
        duplicate: bool,
        married_last: &mut Option<&'static str>,
    ) -> (Vec<String>, Option<String>) {
        let id = self.next_customer_id();
        let rng = &mut self.rng;
        let c = &COUNTRIES[p.country];
        let mut first = p.first.to_string();
        let mut last = married_last.unwrap_or(p.last).to_string();
        let mut email = p.email.clone();
        let mut mailbox = Some(p.email.clone());
        let mut address = p.address.clone();
        let mut created_ms = p.created_ms;
        let mut blank = [false; 15];
        if duplicate {
            created_ms = rng.random_range(p.created_ms..WINDOW_END_MS - DAY_MS);
            for _ in 0..rng.random_range(1..=3) {
                match rng.random_range(0..9) {
                    0 => {
                        if rng.random_bool(0.5) {
                            first = typo(rng, &first);
                        } else {
                            last = typo(rng, &last);
                        }
                    }
                    1 | 2 => match NICKNAMES.iter().find(|(formal, _)| *formal == p.first) {
                        Some((_, nicks)) => first = (*pick(rng, nicks)).to_string(),
                        None => first = typo(rng, &first),
                    },
                    3 => {
                        first = case_noise(rng, &first);
                        if rng.random_bool(0.5) {
                            last = case_noise(rng, &last);
                        }
                    }
                    4 => email = email_variant(rng, &email),
                    5 if p.gender == Gender::Female && married_last.is_none() => {
                        let mut new_last = *pick(rng, LAST_NAMES);
                        if new_last == p.last {
                            new_last = *pick(rng, LAST_NAMES);
                        }
                        *married_last = Some(new_last);
                        last = new_last.to_string();
                        let domain = p.email.rsplit_once('@').map_or("gmail.com", |(_, d)| d);
                        email = self
                            .emails
                            .make(rng, p.first, new_last, p.birth.0, domain, p.index);
                        mailbox = Some(email.clone());
                    }
                    5 | 6 => {
                        address = Address::random(rng, p.country);
                    }
                    7 => {
                        for _ in 0..rng.random_range(1..=2) {
                            let field =
                                *pick(rng, &[col::EMAIL, col::PHONE, col::BIRTH, col::STREET]);
                            blank[field] = true;
                        }
                    }
                    _ => {
                        let domain = *pick(rng, WORK_DOMAINS);
                        email = self
                            .emails
                            .make(rng, p.first, &last, p.birth.0, domain, p.index);
                        mailbox = Some(email.clone());
                    }
                }
            }
            if rng.random_bool(0.25) {
                let (long, short) = *pick(rng, STREET_ABBREVIATIONS);
                address.street = address.street.replace(long, short);
            }
        } else if rng.random_bool(0.04) {
            first = case_noise(rng, &first);
            last = case_noise(rng, &last);
        }

        let mut phone = p.phone.format(rng);
        let mut first_out = first;
        if rng.random_bool(0.006) {
            email = (*pick(rng, JUNK_EMAILS)).to_string();
            mailbox = None;
        }
        if rng.random_bool(0.006) {
            phone = (*pick(rng, JUNK_PHONES)).to_string();
        }
        if rng.random_bool(0.002) {
            first_out = (*pick(rng, JUNK_NAMES)).to_string();
        }
        for (field, p_missing) in [
            (col::FIRST, 0.01),
            (col::LAST, 0.01),
            (col::EMAIL, 0.03),
            (col::PHONE, 0.08),
            (col::BIRTH, 0.06),
            (col::STREET, 0.03),
            (col::CITY, 0.02),
            (col::POSTCODE, 0.03),
            (col::COUNTRY, 0.02),
            (col::UPDATED, 0.05),
            (col::CREATED, 0.02),
        ] {
            if rng.random_bool(p_missing) {
                blank[field] = true;
            }
        }
        if blank[col::EMAIL] {
            mailbox = None;
        }

        let (y, m, d) = p.birth;
        let birth = match rng.random_range(0..100) {
            0..=84 => format!("{y:04}-{m:02}-{d:02}"),
            85..=91 => format!("{d:02}/{m:02}/{y:04}"),
            _ => format!("{m:02}/{d:02}/{y:04}"),
        };
        let country = if rng.random_bool(0.4) {
            c.code.to_string()
        } else {
            (*pick(rng, c.spellings)).to_string()
        };
        let city = if rng.random_bool(0.03) {
            case_noise(rng, address.city)
        } else {
            address.city.to_string()
        };
        let updated_ms = rng.random_range(created_ms..WINDOW_END_MS);
        let created = format_time(
            created_ms,
            pick_weighted(rng, CRM_TIME_STYLES),
            c.utc_offset_min,
        );
        let updated = format_time(
            updated_ms,
            pick_weighted(rng, CRM_TIME_STYLES),
            c.utc_offset_min,
        );
        let status = match rng.random_range(0..10) {
            0..=5 => p.status.to_string(),
            6..=8 => capitalize(p.status),
            _ => p.status.to_uppercase(),
        };
        let tier = if rng.random_bool(0.1) {
            p.tier.to_lowercase()
        } else {
            p.tier.to_string()
        };
        let opt_in = if rng.random_bool(0.05) {
            String::new()
        } else {
            let (yes, no) = *pick(rng, OPT_IN_SPELLINGS);
            (if p.opt_in { yes } else { no }).to_string()
        };

        let mut fields = vec![
            id,
            first_out,
            last,
            email,
            phone,
            birth,
            address.street,
            city,
            address.postcode,
            country,
            status,
            created,
            updated,
            tier,
            opt_in,
        ];
        for (field, value) in fields.iter_mut().enumerate() {
            if blank[field] {
                value.clear();
            }
        }
        (fields, mailbox)
    }

    // ------------------------------------------------------------------ Orders

    /// Decide the person's orders (without writing them yet: web purchase
    /// events refer to them).
    fn plan_orders(&mut self, p: &Person, identity: &Identity) -> Vec<Order> {
        let rng = &mut self.rng;
        let mean = self.opts.orders_per_customer * activity_factor(rng, 0.8);
        let n = stochastic_round(rng, mean);
        let c = &COUNTRIES[p.country];
        let mut orders = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let order_id = format!(
                "O{:08}",
                scrambled(self.order_seq, 90_000_000, 27, self.id_key ^ 1, 10_000_000)
            );
            self.order_seq += 1;
            let product = pick(rng, PRODUCTS);
            let quantity = match rng.random_range(0..10) {
                0..=6 => 1,
                7 | 8 => 2,
                _ => rng.random_range(3..=5),
            };
            let unit_price = local_price(product, c.currency);
            let discount = if rng.random_bool(0.15) { 0.9 } else { 1.0 };
            let revenue = round2(unit_price * quantity as f64 * discount);
            let channel = pick_weighted(rng, &[("web", 50), ("store", 30), ("app", 20)]);
            let guest = identity.customer_ids.is_empty() || rng.random_bool(P_GUEST_ORDER);
            let (customer_id, email) = if guest {
                let email = identity
                    .emails
                    .first()
                    .cloned()
                    .unwrap_or_else(|| p.email.clone());
                let email = if rng.random_bool(0.3) {
                    email_variant(rng, &email)
                } else {
                    email
                };
                (None, Some(email))
            } else {
                let id = identity.pick_customer_id(rng);
                let email = (channel != "store" && rng.random_bool(0.6))
                    .then(|| identity.emails.first().cloned())
                    .flatten();
                (id, email)
            };
            orders.push(Order {
                order_id,
                customer_id,
                email,
                time_ms: rng.random_range(WINDOW_START_MS..WINDOW_END_MS),
                product,
                quantity,
                unit_price,
                revenue,
                channel,
            });
        }
        orders
    }

    /// Write the person's orders, their refunds and their truth rows.
    fn write_orders(&mut self, p: &Person, orders: &[Order]) -> Result<()> {
        let c = &COUNTRIES[p.country];
        for order in orders {
            let style = pick_weighted(&mut self.rng, ORDER_TIME_STYLES);
            let row = TxRow {
                order_id: Some(order.order_id.clone()),
                customer_id: order.customer_id.clone(),
                email: order.email.clone(),
                order_time: Some(format_time(order.time_ms, style, c.utc_offset_min)),
                product: order.product,
                quantity: order.quantity,
                unit_price: order.unit_price,
                currency: c.currency,
                revenue: Some(order.revenue),
                transaction_type: "purchase",
                channel: order.channel,
            };
            self.push_order(row, &p.person_id)?;
            if self.rng.random_bool(P_REFUND) {
                let refund_id = format!(
                    "R{:08}",
                    scrambled(self.refund_seq, 90_000_000, 27, self.id_key ^ 2, 10_000_000)
                );
                self.refund_seq += 1;
                let when = order.time_ms + self.rng.random_range(DAY_MS..30 * DAY_MS);
                let style = pick_weighted(&mut self.rng, ORDER_TIME_STYLES);
                let row = TxRow {
                    order_id: Some(refund_id),
                    customer_id: order.customer_id.clone(),
                    email: order.email.clone(),
                    order_time: Some(format_time(when, style, c.utc_offset_min)),
                    product: order.product,
                    quantity: -order.quantity,
                    unit_price: order.unit_price,
                    currency: c.currency,
                    revenue: Some(-order.revenue),
                    transaction_type: "refund",
                    channel: order.channel,
                };
                self.push_order(row, &p.person_id)?;
            }
        }
        Ok(())
    }

    /// Maybe break `row`, record its truth, queue it.
    fn push_order(&mut self, mut row: TxRow, person_id: &str) -> Result<()> {
        if self.rng.random_bool(P_ORDER_INVALID) {
            let defect = match self.rng.random_range(0..4) {
                0 => OrderDefect::NoOrderId,
                1 => OrderDefect::BadTime,
                2 => OrderDefect::NoRevenue,
                _ => OrderDefect::NoCustomer,
            };
            match defect {
                OrderDefect::NoOrderId => row.order_id = None,
                OrderDefect::BadTime => {
                    row.order_time = self.rng.random_bool(0.7).then(|| "not a date".to_string());
                }
                OrderDefect::NoRevenue => row.revenue = None,
                OrderDefect::NoCustomer => {
                    row.customer_id = None;
                    row.email = None;
                }
            }
        }
        if let Some(id) = &row.order_id {
            self.truth.add("transactions", id, person_id)?;
        }
        self.tx.push(row)
    }

    // ------------------------------------------------------------------ Web

    /// The person's devices: 1–3, a few of them shared with an earlier person.
    fn devices(&mut self) -> Vec<Device> {
        let rng = &mut self.rng;
        let n = pick_weighted(rng, &[(1usize, 55), (2, 33), (3, 12)]);
        let mut devices = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        for _ in 0..n {
            if !self.recent_devices.is_empty() && rng.random_bool(P_SHARED_DEVICE) {
                let i = rng.random_range(0..self.recent_devices.len());
                if let Some(shared) = self.recent_devices.get(i) {
                    devices.push(shared.clone());
                    continue;
                }
            }
            let kind = pick_weighted(rng, &[("mobile", 50), ("desktop", 38), ("tablet", 12)]);
            let user_agent = match kind {
                "mobile" => *pick(rng, USER_AGENTS_MOBILE),
                "desktop" => *pick(rng, USER_AGENTS_DESKTOP),
                _ => *pick(rng, USER_AGENTS_TABLET),
            };
            let cookies = (0..if rng.random_bool(0.15) { 2 } else { 1 })
                .map(|_| format!("ck-{}", random_hex(rng, 16)))
                .collect();
            let device = Device {
                id: format!("dev-{}", random_hex(rng, 12)),
                kind,
                user_agent,
                cookies,
                time_style: pick_weighted(rng, WEB_TIME_STYLES),
            };
            created.push(device.clone());
            devices.push(device);
        }
        // Only now, so that a person never "shares" a device with themselves.
        for device in created {
            if self.recent_devices.len() >= RECENT_DEVICES {
                self.recent_devices.pop_front();
            }
            self.recent_devices.push_back(device);
        }
        devices
    }

    /// Write the person's web events: a purchase session for web/app orders
    /// (when the person's event budget allows, or now and then regardless),
    /// then browsing sessions until the budget is used.
    fn write_events(&mut self, p: &Person, identity: &Identity, orders: &[Order]) -> Result<()> {
        let drawn = {
            let mean = self.opts.events_per_customer * activity_factor(&mut self.rng, 1.0);
            stochastic_round(&mut self.rng, mean)
        };
        // Pay back events earlier people wrote beyond their budget, so the
        // total stays near customers × events_per_customer.
        let budget = drawn - drawn.min(self.event_overshoot);
        self.event_overshoot -= drawn - budget;
        let written = self.write_person_events(p, identity, orders, budget)?;
        self.event_overshoot += written.saturating_sub(budget);
        Ok(())
    }

    /// [`Self::write_events`] for a given budget; returns the events written.
    fn write_person_events(
        &mut self,
        p: &Person,
        identity: &Identity,
        orders: &[Order],
        budget: u64,
    ) -> Result<u64> {
        let has_online = orders.iter().any(|o| o.channel != "store");
        if budget == 0 && !has_online {
            return Ok(0);
        }
        let devices = self.devices();
        let mut written = 0u64;
        for order in orders.iter().filter(|o| o.channel != "store") {
            let views = self.rng.random_range(1..=2u64);
            // Page views, add to cart, checkout, purchase.
            let size = views + 3;
            if written + size > budget && !self.rng.random_bool(P_TRACKED_OVER_BUDGET) {
                continue; // not tracked (ad blocker, consent banner, ...)
            }
            written += self.purchase_session(p, &devices, order, views)?;
        }
        let mut signed_up = identity.customer_ids.is_empty() || !self.rng.random_bool(0.3);
        while written < budget {
            let device = if devices.len() > 1 && self.rng.random_bool(0.4) {
                pick(&mut self.rng, &devices)
            } else {
                &devices[0]
            };
            written +=
                self.browse_session(p, identity, device, budget - written, &mut signed_up)?;
        }
        Ok(written)
    }

    /// Product views, add to cart, checkout and purchase ending at the order's
    /// time, logged in as the order's customer (or anonymous for a guest).
    fn purchase_session(
        &mut self,
        p: &Person,
        devices: &[Device],
        order: &Order,
        views: u64,
    ) -> Result<u64> {
        let c = &COUNTRIES[p.country];
        let device = pick(&mut self.rng, devices);
        let mut session = self.session(
            &p.person_id,
            device,
            order.customer_id.clone(),
            0,
            c.utc_offset_min,
        );
        // Work backwards from the order time so the purchase lands on it.
        let lead: i64 = (0..views + 2)
            .map(|_| self.rng.random_range(5_000..120_000))
            .sum();
        session.t_ms = order.time_ms - lead;
        let browse = EventExtras {
            product: Some(order.product),
            app: order.channel == "app",
            ..Default::default()
        };
        let mut n = 0;
        for _ in 0..views {
            n += self.emit(&mut session, EventKind::PageView, &browse)?;
        }
        n += self.emit(&mut session, EventKind::AddToCart, &browse)?;
        let with_order = EventExtras {
            order: Some(order),
            currency: Some(c.currency),
            ..browse
        };
        n += self.emit(&mut session, EventKind::Checkout, &with_order)?;
        session.t_ms = order.time_ms;
        n += self.emit(&mut session, EventKind::Purchase, &with_order)?;
        Ok(n)
    }

    /// One browsing session of at most about `max_events` events: anonymous,
    /// logged in from the start, or anonymous until a login part-way through
    /// (the first login may come with a sign-up). Returns the events written.
    fn browse_session(
        &mut self,
        p: &Person,
        identity: &Identity,
        device: &Device,
        max_events: u64,
        signed_up: &mut bool,
    ) -> Result<u64> {
        let start = self
            .rng
            .random_range(WINDOW_START_MS..WINDOW_END_MS - DAY_MS);
        let mode = if identity.customer_ids.is_empty() {
            0
        } else {
            self.rng.random_range(0..100)
        };
        let user = identity.pick_customer_id(&mut self.rng);
        let from_start = if mode >= 60 { user.clone() } else { None };
        let offset_min = COUNTRIES[p.country].utc_offset_min;
        let mut session = self.session(&p.person_id, device, from_start, start, offset_min);
        let len = 1 + self
            .rng
            .random_range(0..12u64)
            .min(self.rng.random_range(0..12u64));
        let len = len.min(max_events).max(1);
        // Anonymous browsing, then a login part-way (never for 1-event sessions).
        let login_at = (35..60)
            .contains(&mode)
            .then(|| self.rng.random_range(1..len.max(2)));
        let app = device.user_agent.starts_with("ShopApp");
        let mut n = 0;
        if len > 1 && self.rng.random_bool(0.4) {
            n += self.emit(
                &mut session,
                EventKind::SessionStart,
                &EventExtras::default(),
            )?;
        }
        while n < len {
            if login_at == Some(n) {
                session.user_id = user.clone();
                if !*signed_up {
                    *signed_up = true;
                    n += self.emit(&mut session, EventKind::SignUp, &EventExtras::default())?;
                }
                n += self.emit(&mut session, EventKind::Login, &EventExtras::default())?;
                if self.rng.random_bool(0.3) {
                    let email = identity.emails.first().map(String::as_str);
                    let extras = EventExtras {
                        email,
                        ..Default::default()
                    };
                    n += self.emit(&mut session, EventKind::Identify, &extras)?;
                }
                continue;
            }
            let kind = match self.rng.random_range(0..100) {
                0..=61 => EventKind::PageView,
                62..=85 => EventKind::Click,
                86..=94 => EventKind::AddToCart,
                95..=97 => EventKind::Checkout,
                _ => EventKind::Unknown,
            };
            let product = (kind != EventKind::Click || self.rng.random_bool(0.3))
                .then(|| pick(&mut self.rng, PRODUCTS));
            let extras = EventExtras {
                product,
                app,
                ..Default::default()
            };
            n += self.emit(&mut session, kind, &extras)?;
        }
        Ok(n)
    }

    fn session<'a>(
        &mut self,
        person_id: &'a str,
        device: &'a Device,
        user_id: Option<String>,
        t_ms: i64,
        offset_min: i32,
    ) -> Session<'a> {
        let cookie = if device.cookies.len() > 1 && self.rng.random_bool(0.5) {
            pick(&mut self.rng, &device.cookies)
        } else {
            device.cookies.last().map_or("", String::as_str)
        };
        Session {
            person_id,
            device,
            cookie,
            session_id: format!("s-{}", random_hex(&mut self.rng, 12)),
            user_id,
            t_ms,
            offset_min,
        }
    }

    /// Write one event of `session` (maybe broken, maybe duplicated) and its
    /// truth row; advance the session clock. Returns 1 (events counted).
    fn emit(
        &mut self,
        session: &mut Session<'_>,
        kind: EventKind,
        extras: &EventExtras<'_>,
    ) -> Result<u64> {
        let rng = &mut self.rng;
        self.message_seq += 1;
        let message_id = format!("m-{:09}", self.message_seq);
        let defect = rng
            .random_bool(P_WEB_INVALID)
            .then(|| match rng.random_range(0..20) {
                0..=5 => WebDefect::Truncated,
                6..=9 => WebDefect::NoTimestamp,
                10..=13 => WebDefect::Yesterday,
                14..=16 => WebDefect::NoMessageId,
                _ => WebDefect::JunkProperties,
            });

        let call = match kind {
            EventKind::Identify => "identify",
            EventKind::PageView if extras.app && rng.random_bool(0.5) => "screen",
            EventKind::PageView if rng.random_bool(0.5) => "page",
            _ => "track",
        };
        let event = (kind != EventKind::Identify).then(|| *pick(rng, kind.spellings()));
        let url = page_url(rng, kind, extras.product);
        let style = if rng.random_bool(0.1) {
            pick_weighted(rng, WEB_TIME_STYLES)
        } else {
            session.device.time_style
        };
        let text_time;
        let timestamp = match defect {
            Some(WebDefect::NoTimestamp) => None,
            Some(WebDefect::Yesterday) => Some(JsonTime::Text("yesterday")),
            _ if style == TimeStyle::EpochMillis => Some(JsonTime::Millis(session.t_ms)),
            _ => {
                text_time = format_time(session.t_ms, style, session.offset_min);
                Some(JsonTime::Text(&text_time))
            }
        };
        let order = extras
            .order
            .filter(|_| matches!(kind, EventKind::Checkout | EventKind::Purchase));
        let properties = if defect == Some(WebDefect::JunkProperties) {
            EventProperties::Junk("oops")
        } else {
            EventProperties::Object(PropertiesJson {
                session_id: &session.session_id,
                product_id: extras.product.map(|p| p.id),
                order_id: order.map(|o| o.order_id.as_str()),
                revenue: order
                    .filter(|_| kind == EventKind::Purchase)
                    .map(|o| o.revenue),
                currency: order
                    .and(extras.currency)
                    .filter(|_| kind == EventKind::Purchase),
            })
        };
        let line = EventLine {
            message_id: (defect != Some(WebDefect::NoMessageId)).then_some(message_id.as_str()),
            kind: call,
            event,
            anonymous_id: session.cookie,
            user_id: session.user_id.as_deref(),
            timestamp,
            context: EventContext {
                device: DeviceJson {
                    id: &session.device.id,
                    kind: session.device.kind,
                },
                page: PageJson { url: &url },
                user_agent: session.device.user_agent,
            },
            properties,
            traits: extras
                .email
                .filter(|_| kind == EventKind::Identify)
                .map(|email| Traits { email }),
        };
        let mut text = serde_json::to_string(&line).context("encoding a web event")?;
        if defect == Some(WebDefect::Truncated) {
            let mut cut = rng.random_range(text.len() / 4..=text.len() * 3 / 4);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text.push('\n');
        let line = text.into_bytes();

        // A truncated line is unreadable, so its id does not count as present.
        if !matches!(defect, Some(WebDefect::NoMessageId | WebDefect::Truncated)) {
            self.truth.add("web", &message_id, session.person_id)?;
        }
        if self.rng.random_bool(P_WEB_DUPLICATE) {
            self.web.push(line.clone())?;
        }
        self.web.push(line)?;
        session.t_ms += self.rng.random_range(2_000..90_000);
        Ok(1)
    }
}

/// A plausible page for an event.
fn page_url(rng: &mut ChaCha8Rng, kind: EventKind, product: Option<&Product>) -> String {
    const BASE: &str = "https://shop.example.com";
    match (kind, product) {
        (EventKind::Checkout | EventKind::Purchase, _) => format!("{BASE}/checkout"),
        (EventKind::Login | EventKind::SignUp | EventKind::Identify, _) => {
            format!("{BASE}/account/login")
        }
        (_, Some(p)) => format!("{BASE}/p/{}", p.id.trim_start_matches('P')),
        _ => match rng.random_range(0..4) {
            0 => format!("{BASE}/"),
            1 => format!("{BASE}/c/{}", pick(rng, CATEGORY_SLUGS)),
            2 => format!("{BASE}/search?q={}", pick(rng, SEARCH_TERMS)),
            _ => format!("{BASE}/cart"),
        },
    }
}

/// The catalogue price in `currency`, ending in .x9 or a round figure.
fn local_price(product: &Product, currency: &str) -> f64 {
    let rate = match currency {
        "EUR" => 0.92,
        "GBP" => 0.79,
        _ => 1.0,
    };
    round2(product.price_usd * rate)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One RFC 4180 CSV line (with `\n`), any number of fields.
fn encode_csv_line<S: AsRef<[u8]>>(fields: &[S]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .buffer_capacity(256)
        .from_writer(Vec::with_capacity(256));
    writer.write_record(fields).context("encoding a CSV row")?;
    writer
        .into_inner()
        .map_err(|e| anyhow::anyhow!("encoding a CSV row: {}", e.error()))
}

/// The line re-encoded as Latin-1 (what a legacy export does), if that makes
/// it invalid UTF-8: it must contain a character in U+0080..=U+00FF. Other
/// non-ASCII characters become `?`.
fn latin1_bytes(line: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.chars().any(|c| ('\u{80}'..='\u{ff}').contains(&c)) {
        return None;
    }
    Some(
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
    )
}
