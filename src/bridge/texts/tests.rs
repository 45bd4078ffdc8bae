use super::builtin::{FILES, parse_file};
use super::keys::WORDS;
use super::*;
use crate::ledger::AttemptStatus;
use crate::message::{fit, text_width};
use crate::money::{Amount, Currency};

/// ERROR codes with a text of their own in every catalogue; the others use `OTHER`.
const ERRORS_WITH_TEXT: [ErrorCode; 4] = [
    ErrorCode::DuplicateMismatch,
    ErrorCode::LimitExceeded,
    ErrorCode::UnknownRefund,
    ErrorCode::InternalError,
];

fn record(state: RefundState, code: Option<&str>) -> RefundRecord {
    RefundRecord {
        id: 1,
        terminal_id: "T1".into(),
        original_merchant_refund_id: "REF-7".into(),
        payment_id: "P".into(),
        amount: Some(Amount::new(1250, Currency::parse("USD").unwrap()).unwrap()),
        memo: None,
        provider: "antom".into(),
        state,
        attempt_id: 1,
        refund_request_id: "Q".into(),
        attempt_status: AttemptStatus::Done,
        provider_refund_id: None,
        refund_time: None,
        refunded: None,
        result_code: code.map(str::to_owned),
        result_message: Some("The merchant balance is insufficient.".into()),
        created_ms: 0,
        updated_ms: 0,
        next_action_ms: None,
        tries: 0,
        delivered_state: None,
        revision: 1,
    }
}

fn english(cols: u16, rows: u16) -> Audience {
    Audience {
        language: Language::En,
        screen: Screen::new(cols, rows),
    }
}

fn audience(language: Language, cols: u16, rows: u16) -> Audience {
    let catalogue = Catalogue::new(MessageOverrides::default());
    catalogue.audience("T1", Some(language), &DisplayInfo::size(cols, rows))
}

/// The currency a language's shops mostly take, and a large amount in it.
fn local_amount(language: Language) -> Amount {
    let (code, value) = match language {
        Language::En => ("USD", 9_999_999),
        Language::ZhHans => ("CNY", 9_999_999),
        Language::ZhHant => ("TWD", 9_999_999),
        Language::Ja => ("JPY", 9_999_999),
        Language::Ko => ("KRW", 99_999_999),
        Language::Th => ("THB", 9_999_999),
        Language::Ms => ("MYR", 9_999_999),
        Language::Id => ("IDR", 9_999_999_999_i64.min(crate::money::MAX_AMOUNT)),
        Language::FrCa => ("CAD", 9_999_999),
    };
    Amount::new(value, Currency::parse(code).unwrap()).unwrap()
}

#[test]
fn every_catalogue_parses_and_has_every_key() {
    for (language, text) in FILES {
        let builtin = parse_file(language, text).unwrap_or_else(|e| panic!("{e}"));
        let texts = &builtin.texts;
        for state in RefundState::ALL {
            assert!(
                texts.states.contains_key(state.as_str()),
                "{language}: no text for state {state}"
            );
        }
        for code in ERRORS_WITH_TEXT
            .map(ErrorCode::as_str)
            .iter()
            .chain(&[OTHER_ERROR])
        {
            assert!(
                texts.errors.contains_key(*code),
                "{language}: no text for error {code}"
            );
        }
        for (key, _) in REASONS {
            assert!(
                texts.reasons.contains_key(*key),
                "{language}: no reason {key}"
            );
        }
        for key in WORDS {
            assert!(texts.words.contains_key(key), "{language}: no word {key}");
        }
        assert!(BUILTINS.contains_key(&language), "{language}");
        assert!(!builtin.name.is_empty());
    }
    assert!(BUILTINS.get(&Language::En).is_some_and(|b| b.ascii));
}

/// Each result code belongs to one reason at most.
#[test]
fn reasons_cover_codes_once() {
    let mut seen = std::collections::HashSet::new();
    for (_, codes) in REASONS {
        for code in *codes {
            assert!(seen.insert(*code), "{code} has two reasons");
        }
    }
    assert_eq!(
        reason_key("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH"),
        Some("BALANCE_LOW")
    );
    assert_eq!(reason_key("20014"), Some("AMOUNT_TOO_HIGH"));
    assert_eq!(reason_key("SOMETHING_NEW"), None);
}

/// Every text of every catalogue fits a 16-column, 4-line screen whole, with the
/// values it is shown with: a large amount in the language's usual currency and in
/// US dollars, a refund id, each reason under FAILED, a refusal's detail.
#[test]
fn every_text_fits_sixteen_by_four() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    let usd = Amount::new(9_999_999, Currency::parse("USD").unwrap()).unwrap();
    for language in Language::ALL {
        let who = audience(language, 16, 4);
        assert_eq!(who.language, language);
        let texts = &BUILTINS[&language].texts;
        let check = |what: &str, paragraphs: Vec<String>| {
            let fitted = fit(&paragraphs, who.screen);
            assert!(
                !fitted.truncated,
                "{language} {what}: does not fit 16x4: {paragraphs:?} -> {:?}",
                fitted.lines
            );
        };
        for amount in [local_amount(language), usd] {
            for state in RefundState::ALL {
                let mut refund = record(state, Some("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH"));
                refund.amount = Some(amount);
                refund.original_merchant_refund_id = "REF-2026112401".into();
                let shown = catalogue.for_refund(&refund, who);
                let fitted = fit(&shown.lines, who.screen);
                assert!(!fitted.truncated, "{language} {state}: {:?}", shown.lines);
                assert!(shown.lines.len() <= 4);
                assert!(
                    !shown.lines.iter().any(|l| l.ends_with('…')),
                    "{language} {state}: {:?}",
                    shown.lines
                );
            }
        }
        let failed = &texts.states["FAILED"];
        for (key, _) in REASONS {
            let values = [("reason", texts.reasons[*key].clone())];
            check(key, failed.iter().map(|t| fill(t, &values)).collect());
        }
        let unknown = fill(
            &texts.words["UNKNOWN_REASON"],
            &[("code", "DPOS_NEW_CODE_X".into())],
        );
        check(
            "UNKNOWN_REASON",
            failed
                .iter()
                .map(|t| fill(t, &[("reason", unknown.clone())]))
                .collect(),
        );
        for (key, text) in &texts.errors {
            let values = [
                ("id", "REF-2026112401".to_owned()),
                ("code", "UNEXPECTED_KIND".to_owned()),
                ("detail", "over the 500.00 USD limit per refund".to_owned()),
            ];
            check(key, text.iter().map(|t| fill(t, &values)).collect());
        }
        check("FULL_AMOUNT", vec![texts.words["FULL_AMOUNT"].clone()]);
    }
}

#[test]
fn every_state_has_text_that_fits_any_screen() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    for language in Language::ALL {
        for state in RefundState::ALL {
            for (cols, rows) in [(16, 2), (20, 4), (1, 1), (3, 1), (80, 16)] {
                let who = audience(language, cols, rows);
                let d = catalogue.for_refund(
                    &record(state, Some("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH")),
                    who,
                );
                assert!(!d.lines.is_empty());
                assert!(d.lines.len() <= usize::from(rows));
                assert!(
                    d.lines
                        .iter()
                        .all(|l| text_width(l, who.screen.wide_ambiguous) <= usize::from(cols)),
                    "{language} {state} {cols}x{rows}: {:?}",
                    d.lines
                );
            }
        }
    }
}

#[test]
fn codes_read_the_same_with_or_without_prefix() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    for code in [
        "MERCHANT_BALANCE_NOT_ENOUGH",
        "DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH",
    ] {
        let d = catalogue.for_refund(&record(RefundState::Failed, Some(code)), english(40, 4));
        assert_eq!(d.lines, vec!["Refund declined", "Merchant balance too low"]);
        assert_eq!(d.tone, Tone::Error);
    }
    let d = catalogue.for_refund(
        &record(RefundState::Failed, Some("DPOS_WEIRD_NEW_CODE")),
        english(40, 4),
    );
    assert_eq!(d.lines[1], "Code WEIRD_NEW_CODE");
    let ok = catalogue.for_refund(&record(RefundState::Succeeded, None), english(40, 4));
    assert_eq!(ok.lines, vec!["Refund approved", "$12.50"]);
}

#[test]
fn each_language_reads_its_own_words_and_amounts() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    let jpy = Amount::new(1250, Currency::parse("JPY").unwrap()).unwrap();
    let mut refund = record(RefundState::Succeeded, None);
    refund.amount = Some(jpy);
    let ja = catalogue.for_refund(&refund, audience(Language::Ja, 16, 4));
    assert_eq!(ja.lines, vec!["返金完了", "￥1,250"]);
    let mut declined = record(RefundState::Failed, Some("20007"));
    declined.amount = Some(Amount::new(1250, Currency::parse("CAD").unwrap()).unwrap());
    let fr = catalogue.for_refund(&declined, audience(Language::FrCa, 16, 4));
    assert_eq!(
        fr.lines,
        vec!["Remboursement", "refusé", "Solde marchand", "insuffisant"]
    );
    let th = catalogue.for_refund(
        &record(RefundState::Failed, Some("ORDER_NOT_EXIST")),
        audience(Language::Th, 16, 4),
    );
    assert_eq!(th.lines, vec!["คืนเงินไม่สำเร็จ", "ไม่พบรายการชำระ"]);
    let ko = catalogue.for_error(
        ErrorCode::UnknownRefund,
        "no refund REF-9 from this terminal",
        Some("REF-9"),
        audience(Language::Ko, 16, 4),
    );
    assert_eq!(ko.lines, vec!["환불 내역 없음", "REF-9"]);
    let zh = catalogue.for_error(
        ErrorCode::MissingField,
        "paymentId: is required",
        None,
        audience(Language::ZhHans, 16, 4),
    );
    assert_eq!(zh.lines, vec!["请求未被受理", "MISSING_FIELD"]);
    let full = record(RefundState::Accepted, None);
    let full = RefundRecord {
        amount: None,
        ..full
    };
    let id = catalogue.for_refund(&full, audience(Language::Id, 16, 4));
    assert_eq!(
        id.lines,
        vec!["Refund diterima", "Jumlah penuh", "Mengirim..."]
    );
}

#[test]
fn the_language_comes_from_the_configuration_then_hello_then_english() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    let hello = |languages: &[&str], charset: Option<DisplayCharset>| DisplayInfo {
        charset,
        languages: languages.iter().map(|l| l.to_string()).collect(),
        ..DisplayInfo::size(16, 4)
    };
    let chosen = |configured, display: &DisplayInfo| catalogue.audience("T", configured, display);
    assert_eq!(chosen(None, &hello(&[], None)).language, Language::En);
    assert_eq!(
        chosen(None, &hello(&["de", "zh-TW", "ja"], None)).language,
        Language::ZhHant
    );
    assert_eq!(
        chosen(Some(Language::Ko), &hello(&["ja"], None)).language,
        Language::Ko
    );
    // ASCII screens: English, unless the catalogue is ASCII already.
    let ascii = Some(DisplayCharset::Ascii);
    assert_eq!(
        chosen(Some(Language::Ja), &hello(&[], ascii)).language,
        Language::En
    );
    assert_eq!(
        chosen(None, &hello(&["fr-CA"], ascii)).language,
        Language::En
    );
    assert_eq!(
        chosen(Some(Language::Ms), &hello(&[], ascii)).language,
        Language::Ms
    );
    // East Asian text: ambiguous characters counted wide unless the terminal says.
    assert!(
        chosen(Some(Language::Ja), &hello(&[], None))
            .screen
            .wide_ambiguous
    );
    assert!(
        !chosen(Some(Language::Th), &hello(&[], None))
            .screen
            .wide_ambiguous
    );
    let narrow = DisplayInfo {
        ambiguous_width: Some(1),
        ..hello(&[], None)
    };
    assert!(!chosen(Some(Language::Ja), &narrow).screen.wide_ambiguous);
}

#[test]
fn ascii_screens_never_see_anything_else() {
    let overrides: MessageOverrides = toml::from_str(
        r#"
        [states]
        SUCCEEDED = ["Remboursé ✓", "{amount}"]
        [ja.states]
        SUCCEEDED = ["返金OK", "{amount}"]
        "#,
    )
    .unwrap();
    let catalogue = Catalogue::new(overrides);
    let ascii = DisplayInfo {
        charset: Some(DisplayCharset::Ascii),
        ..DisplayInfo::size(16, 4)
    };
    let who = catalogue.audience("T", Some(Language::Ja), &ascii);
    let mut refund = record(RefundState::Succeeded, None);
    refund.amount = Some(Amount::new(1250, Currency::parse("JPY").unwrap()).unwrap());
    let d = catalogue.for_refund(&refund, who);
    assert_eq!(d.lines, vec!["Refund approved", "JPY 1,250"]);
    let mut declined = record(RefundState::Failed, Some("WEIRD"));
    declined.result_message = Some("余额不足".into());
    for state in RefundState::ALL {
        declined.state = state;
        for line in catalogue.for_refund(&declined, who).lines {
            assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
        }
    }
}

#[test]
fn operators_override_and_are_checked() {
    let overrides: MessageOverrides = toml::from_str(
        r#"
        [states]
        SUCCEEDED = ["Money back: {amount}"]
        [codes]
        MERCHANT_BALANCE_NOT_ENOUGH = "Ask the manager"
        [errors]
        LIMIT_EXCEEDED = ["Too much", "{detail}"]
        [reasons]
        PAYMENT_NOT_FOUND = "No such sale"
        [ja.states]
        SUCCEEDED = ["返金しました", "{amount}"]
        [ja.reasons]
        BALANCE_LOW = "残高が足りません"
        "#,
    )
    .unwrap();
    overrides.validate().unwrap();
    let catalogue = Catalogue::new(overrides);
    let big = english(40, 4);
    assert_eq!(
        catalogue
            .for_refund(&record(RefundState::Succeeded, None), big)
            .lines,
        vec!["Money back: $12.50"]
    );
    let declined = catalogue.for_refund(
        &record(
            RefundState::Failed,
            Some("DPOS_MERCHANT_BALANCE_NOT_ENOUGH"),
        ),
        big,
    );
    assert_eq!(declined.lines[1], "Ask the manager");
    let missing = catalogue.for_refund(&record(RefundState::Failed, Some("ORDER_NOT_EXIST")), big);
    assert_eq!(missing.lines[1], "No such sale");
    let error = catalogue.for_error(ErrorCode::LimitExceeded, "max 500.00 USD", None, big);
    assert_eq!(error.lines, vec!["Too much", "max 500.00 USD"]);
    // A language's own override wins; the general one applies where it has none.
    let ja = audience(Language::Ja, 40, 4);
    assert_eq!(
        catalogue
            .for_refund(&record(RefundState::Succeeded, None), ja)
            .lines,
        vec!["返金しました", "$12.50"]
    );
    assert_eq!(
        catalogue
            .for_refund(&record(RefundState::Failed, Some("20007")), ja)
            .lines[1],
        "残高が足りません"
    );

    for (bad, says) in [
        ("[states]\nDONE = [\"x\"]", "not a refund state"),
        ("[errors]\nOOPS = [\"x\"]", "not an ERROR code"),
        ("[states]\nFAILED = [\"{why}\"]", "unknown placeholder"),
        ("[codes]\nX = \"{amount\"", "without a closing"),
        ("[reasons]\nSAD = \"x\"", "not a reason"),
        ("[ko.words]\nHELLO = \"x\"", "messages.ko.words.HELLO"),
    ] {
        let o: MessageOverrides = toml::from_str(bad).unwrap();
        let err = o.validate().unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    let err = toml::from_str::<MessageOverrides>("[de.states]\nSUCCEEDED = [\"x\"]").unwrap_err();
    assert!(err.to_string().contains("unknown table `de`"), "{err}");
}

#[test]
fn placeholders_are_filled_once() {
    let values = [("id", "{amount}".to_owned()), ("amount", "$1".to_owned())];
    assert_eq!(
        fill("{id} {amount} {nope} {", &values),
        "{amount} $1 {nope} {"
    );
}

/// The README shows one screen per script; they are what the bridge sends a 16×4
/// terminal, drawn as the emulator draws them.
#[test]
fn the_readme_screens_are_the_real_ones() {
    let catalogue = Catalogue::new(MessageOverrides::default());
    let cases: [(Language, RefundState, Option<&str>, i64, &str); 9] = [
        (
            Language::En,
            RefundState::Failed,
            Some("DPOS_REFUND_MERCHANT_BALANCE_NOT_ENOUGH"),
            1250,
            "USD",
        ),
        (Language::FrCa, RefundState::Succeeded, None, 125_000, "CAD"),
        (Language::Ms, RefundState::Succeeded, None, 1250, "MYR"),
        (
            Language::Id,
            RefundState::Processing,
            None,
            15_000_000,
            "IDR",
        ),
        (Language::ZhHans, RefundState::Queued, None, 8800, "CNY"),
        (
            Language::ZhHant,
            RefundState::Failed,
            Some("REFUND_WINDOW_EXCEED"),
            125_000,
            "TWD",
        ),
        (Language::Ja, RefundState::Succeeded, None, 1250, "JPY"),
        (
            Language::Ko,
            RefundState::NeedsAttention,
            None,
            12_500,
            "KRW",
        ),
        (Language::Th, RefundState::Succeeded, None, 12_500, "THB"),
    ];
    let readme = include_str!("../../../README.md");
    let mut missing = Vec::new();
    for (language, state, code, value, currency) in cases {
        let mut refund = record(state, code);
        refund.amount = Some(Amount::new(value, Currency::parse(currency).unwrap()).unwrap());
        refund.original_merchant_refund_id = "REF-1".into();
        let who = audience(language, 16, 4);
        let display = catalogue.for_refund(&refund, who);
        let screen = crate::sim::screen::draw_screen(&display, who.screen);
        let block = format!("{language} {state}\n{screen}");
        if !readme.contains(&block) {
            missing.push(block);
        }
    }
    assert!(
        missing.is_empty(),
        "README lacks:\n{}",
        missing.join("\n\n")
    );
}

#[test]
fn every_refusal_of_posbridge_itself_has_a_reason_text() {
    for refusal in crate::provider::LocalRefusal::ALL {
        assert!(
            reason_key(refusal.code()).is_some(),
            "{} has no reasons key",
            refusal.code()
        );
    }
}
