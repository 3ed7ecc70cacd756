use super::*;

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(Path::new("t.toml"), text)
}

const MINIMAL: &str =
    "name = \"n\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"a@x.org\"\n[expect]\nnaive = \"pass\"\n";

#[test]
fn a_minimal_file_takes_the_documented_defaults() {
    let s = load(MINIMAL).unwrap();
    assert_eq!(
        s.deployment,
        Deployment {
            workers: 1,
            session: SessionMode::Cookie,
            mail_latency_ms: 0,
            otp_ttl_ms: 600_000,
            max_attempts: 5,
            db_mode: DbMode::Autocommit,
        }
    );
    assert_eq!(
        (s.schedules, s.seed, s.invariants.len()),
        (200, 1, Invariant::ALL.len())
    );
    assert!(s.probe, "the end-of-run probe is on unless switched off");
    assert_eq!(s.format, 1);
    assert_eq!(s.requests[0].browser, "b1");
    assert_eq!(s.requests[0].repeat, 1);
}

#[test]
fn errors_point_at_the_line_and_column() {
    let cases = [
        (MINIMAL.replace("at = \"0s\"", "at = \"soon\""), 3, 6, "not a duration"),
        (
            MINIMAL.replace("kind = \"signup\"", "kind = \"signup\"\ncolour = 1"),
            5,
            1,
            "unknown field",
        ),
        (MINIMAL.replace("a@x.org", "nobody"), 5, 9, "not an email"),
        (
            MINIMAL.replace("naive = \"pass\"", "naive = \"maybe\""),
            7,
            9,
            "expected \"pass\"",
        ),
        (MINIMAL.replace("naive =", "seed_fx ="), 7, 11, "unknown variant"),
        (
            format!("{MINIMAL}[[fault]]\nkind = \"db\"\nrequest = 2\nstatement = 1\nerror = \"io\"\n"),
            10,
            11,
            "expected 1 to 1",
        ),
        (
            MINIMAL.replace("[expect]", "[deployment]\nworkers = 9\n[expect]"),
            7,
            11,
            "expected 1 to 8",
        ),
        (MINIMAL.replace("at = \"0s\"\n", ""), 2, 1, "missing field `at`"),
    ];
    for (text, line, column, what) in cases {
        let e = load(&text).unwrap_err();
        assert!(e.message.contains(what), "{e}");
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert!(e.to_string().starts_with(&format!("t.toml:{line}:{column}: ")));
    }
}

const FORMAT_2: &str = "format = 2\nname = \"n\"\n[[browser]]\nname = \"mallory\"\nowns = []\n[[request]]\nat = \"0s\"\nbrowser = \"mallory\"\nkind = \"login\"\nemail = \"a@x.org\"\n[schedules]\nschedules = 3\n[expect]\nnaive = \"pass\"\n";

#[test]
fn format_2_loads_owners_logins_and_schedules() {
    let s = load(FORMAT_2).unwrap();
    assert_eq!(s.format, 2);
    assert_eq!(s.owns("mallory"), vec![]);
    assert_eq!(s.requests[0].kind, Kind::Login);
    assert_eq!(s.schedules, 3);
    assert_eq!(s.password_of("mallory"), Some("s3cret!"), "no signup: his login's");
    // A person's probe password: the table's, else the first signup's.
    let p = load(
        &FORMAT_2
            .replace("owns = []", "owns = []\npassword = \"m's\"")
            .replace("[schedules]", "[probe]\nlogins = false\n[schedules]"),
    )
    .unwrap();
    assert_eq!((p.password_of("mallory"), p.probe), (Some("m's"), false));
    assert_eq!(
        load(&p.to_toml()).unwrap(),
        Scenario {
            path: "t.toml".into(),
            ..p
        }
    );
    // An undeclared browser owns what it signs up for.
    let m = load(MINIMAL).unwrap();
    assert_eq!(m.owns("b1"), vec![Email::parse("a@x.org").unwrap()]);
    assert_eq!(
        load(&s.to_toml()).unwrap(),
        Scenario {
            path: "t.toml".into(),
            ..s
        }
    );
}

#[test]
fn format_2_errors_point_at_the_line_and_column() {
    let cases = [
        (
            FORMAT_2.replace("format = 2", "format = 3"),
            1,
            10,
            "format 3; expected 1 or 2",
        ),
        (
            FORMAT_2.replace("owns = []", "owns = \"a@x.org\""),
            5,
            8,
            "invalid type",
        ),
        (
            FORMAT_2.replace("owns = []", "owns = [7]"),
            5,
            9,
            "expected an address in quotes",
        ),
        (
            FORMAT_2.replace("owns = []", "owns = [\"nobody\"]"),
            5,
            9,
            "in `owns`: not an email",
        ),
        (
            FORMAT_2.replace("owns = []", "owns = [\"a@x.org\", \"A@x.org\"]"),
            5,
            20,
            "listed twice",
        ),
        (
            FORMAT_2.replace("[[request]]", "[[browser]]\nname = \"mallory\"\nowns = []\n[[request]]"),
            7,
            8,
            "declared twice",
        ),
        (
            FORMAT_2.replace("kind = \"login\"", "kind = \"login\"\notp = \"latest\""),
            10,
            7,
            "`otp` is for verify requests only, not login",
        ),
        (
            FORMAT_2.replace("format = 2\n", ""),
            2,
            1,
            "a [[browser]] table needs `format = 2`",
        ),
        (
            MINIMAL.replace("kind = \"signup\"", "kind = \"login\""),
            4,
            8,
            "kind = \"login\" needs `format = 2`",
        ),
        (
            FORMAT_2.replace("[schedules]", "[explore]\nseed = 2\n[schedules]"),
            13,
            1,
            "one section",
        ),
        (
            FORMAT_2.replace("[schedules]", "[deployment]\ndb_mode = \"django\"\n[schedules]"),
            12,
            11,
            "expected \"autocommit\" or \"python\"",
        ),
        (
            MINIMAL.replace("[[request]]", "[deployment]\ndb_mode = \"python\"\n[[request]]"),
            3,
            11,
            "`db_mode` needs `format = 2`",
        ),
        (
            FORMAT_2.replace("owns = []", "owns = []\npassword = \"\""),
            6,
            12,
            "`password` is empty",
        ),
        (
            FORMAT_2.replace("[schedules]", "[probe]\nlogins = \"no\"\n[schedules]"),
            12,
            10,
            "invalid type",
        ),
        (
            FORMAT_2.replace("[schedules]", "[probe]\nlogin = false\n[schedules]"),
            12,
            1,
            "unknown field `login`",
        ),
        (
            format!("{MINIMAL}[probe]\nlogins = false\n"),
            8,
            1,
            "[probe] needs `format = 2`",
        ),
    ];
    for (text, line, column, what) in cases {
        let e = load(&text).unwrap_err();
        assert!(e.message.contains(what), "{what:?} not in {e}");
        assert_eq!((e.line, e.column), (line, column), "{e}");
    }
}

#[test]
fn every_corpus_file_prints_back_to_itself() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut s = Scenario::load(&path).unwrap();
        s.choices = Some(vec![0, 1, 2, 255]);
        let again = Scenario::parse(&path, &s.to_toml()).unwrap_or_else(|e| panic!("{e}\n{}", s.to_toml()));
        assert_eq!(again, s, "{}", path.display());
    }
}

#[test]
fn durations_parse_and_print_back() {
    for (text, ms) in [
        ("0s", 0),
        ("1500ms", 1500),
        ("3s", 3000),
        ("2m", 120_000),
        ("1h", 3_600_000),
    ] {
        assert_eq!(parse_duration(text), Some(ms));
        assert_eq!(parse_duration(&format_duration(ms)), Some(ms));
    }
    for bad in ["", "3", "s", "1.5s", "-1s", "3 s", "3sec"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn a_resend_carries_its_browsers_password_and_no_field_of_its_own() {
    let two = |extra: &str| {
        format!(
            "format = 2\nname = \"n\"\n[[request]]\nat = \"0s\"\nkind = \"signup\"\nemail = \"a@x.org\"\npassword = \"hers\"\n[[request]]\nat = \"1s\"\nkind = \"resend\"\nemail = \"a@x.org\"\n{extra}[expect]\nnaive = \"pass\"\n"
        )
    };
    let s = load(&two("")).unwrap();
    assert_eq!(s.requests[1].kind, Kind::Resend);
    assert_eq!(s.requests[1].password, "hers", "the browser's signup form's");
    assert_eq!(s.owns("b1"), vec![Email::parse("a@x.org").unwrap()]);
    // Printed without a password, and loaded back to the same.
    let printed = s.to_toml();
    assert_eq!(printed.matches("password").count(), 1, "{printed}");
    assert_eq!(
        load(&printed).unwrap(),
        Scenario {
            path: "t.toml".into(),
            ..s
        }
    );
    for (text, line, column, what) in [
        (two("password = \"x\"\n"), 12, 12, "a resend carries no password"),
        (
            two("otp = \"latest\"\n"),
            12,
            7,
            "`otp` is for verify requests only, not resend",
        ),
        (
            two("").replace("format = 2\n", ""),
            9,
            8,
            "kind = \"resend\" needs `format = 2`",
        ),
        (
            two("[[fault]]\nkind = \"mail\"\nrequest = 1\n").replace("kind = \"signup\"", "kind = \"login\""),
            14,
            11,
            "a mail fault must name a signup or a resend",
        ),
    ] {
        let e = load(&text).unwrap_err();
        assert!(e.message.contains(what), "{e}");
        assert_eq!((e.line, e.column), (line, column), "{e}");
    }
    // A mail fault on the resend itself is fine.
    assert!(load(&two("[[fault]]\nkind = \"mail\"\nrequest = 2\n")).is_ok());
}
