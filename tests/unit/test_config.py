import json

import pytest

from stacks.config import SETTING_KEYS, BackendConfig, ConfigError, RegistryConfig, load_config

ROOT_CONTEXT = json.loads((__import__("pathlib").Path(__file__).parents[2] / "cdk.json").read_text())["context"]


def test_defaults_apply_when_nothing_is_configured():
    assert load_config({}) == BackendConfig()


def test_cdk_json_sets_every_key_and_its_values_are_valid():
    assert sorted(key for key in ROOT_CONTEXT if key.startswith("deviceBackend.")) == sorted(SETTING_KEYS)
    load_config(ROOT_CONTEXT)


def test_command_line_strings_are_converted():
    config = load_config(
        {"deviceBackend.presence.disconnectDelaySeconds": "12", "deviceBackend.presence.trackSubscriptions": "false"}
    )
    assert config.presence.disconnect_delay_seconds == 12
    assert config.presence.track_subscriptions is False


def test_command_line_json_is_decoded_and_checked_like_cdk_json():
    thresholds = {"soil": {"moisture": {"min": 25}}}
    config = load_config(
        {
            "deviceBackend.telemetry.thresholds": json.dumps(thresholds),
            "deviceBackend.telemetry.groupThresholds": json.dumps({"seedlings": thresholds}),
            "deviceBackend.telemetry.reservedConcurrency": "20",
        }
    )
    assert (config.telemetry.thresholds, config.telemetry.group_thresholds) == (thresholds, {"seedlings": thresholds})
    assert config.telemetry.reserved_concurrency == 20
    with pytest.raises(ConfigError, match="telemetry.thresholds' is '{soil'; it must be an object"):
        load_config({"deviceBackend.telemetry.thresholds": "{soil"})
    with pytest.raises(ConfigError, match="soil.moisture is reported from 0 to 100"):
        load_config({"deviceBackend.telemetry.thresholds": json.dumps({"soil": {"moisture": {"min": 120}}})})


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("deviceBackend.presence.disconnectDelaySeconds", "soon", "a whole number from 0 to 900"),
        ("deviceBackend.presence.disconnectDelaySeconds", 901, "a whole number from 0 to 900"),
        ("deviceBackend.presence.maxConcurrency", 1, "a whole number from 2 to 1000"),
        ("deviceBackend.namePrefix", "iot-backend", "1-30 letters, digits or '_'"),
        ("deviceBackend.logRetentionDays", 31, "one of 1, 3, 5, 7, 14, 30"),
        ("deviceBackend.logLevel", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
        ("deviceBackend.retainData", "maybe", "true or false"),
        ("deviceBackend.alarmEmail", "not-an-email", "an e-mail address or null"),
        ("deviceBackend.stage", "Dev", "1-16 lowercase letters or digits, starting with a letter, or null"),
        ("deviceBackend.stage", "dev-1", "1-16 lowercase letters or digits, starting with a letter, or null"),
        ("deviceBackend.stage", "1dev", "1-16 lowercase letters or digits, starting with a letter, or null"),
        ("deviceBackend.stage", "d" * 17, "1-16 lowercase letters or digits, starting with a letter, or null"),
        ("deviceBackend.registry.manageEventConfiguration", "sometimes", "true or false"),
    ],
)
def test_a_bad_value_names_the_key_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        load_config({key: value})
    assert f"Context key {key!r} is {value!r}; it must be {allowed}" in str(error.value)


def test_a_stage_follows_the_name_prefix_in_every_name_and_splits_the_metrics():
    staged = load_config({"deviceBackend.stage": "dev"})
    assert (staged.stage, staged.resource_name_prefix, staged.stage_metrics_namespace) == (
        "dev", "iot_backend_dev", "IotDeviceBackend/dev"
    )
    single = load_config({"deviceBackend.stage": None})
    assert (single.stage, single.resource_name_prefix, single.stage_metrics_namespace) == (
        None, "iot_backend", "IotDeviceBackend"
    )
    assert load_config({"deviceBackend.stage": ""}).stage is None  # `-c deviceBackend.stage=`


def test_a_name_prefix_and_stage_too_long_together_fail_naming_both_keys():
    assert load_config({"deviceBackend.namePrefix": "a" * 19, "deviceBackend.stage": "s" * 10}).resource_name_prefix == (
        "a" * 19 + "_" + "s" * 10
    )
    with pytest.raises(ConfigError) as error:
        load_config({"deviceBackend.namePrefix": "a" * 20, "deviceBackend.stage": "s" * 10})
    message = str(error.value)
    assert "'deviceBackend.namePrefix' and 'deviceBackend.stage'" in message and "31 characters" in message
    assert "at most 30" in message


def test_the_registry_event_configuration_can_be_left_to_another_owner():
    assert RegistryConfig().manage_event_configuration is True
    assert load_config({"deviceBackend.registry.manageEventConfiguration": "false"}).registry.manage_event_configuration is False


def test_the_archives_object_lock_is_a_mode_and_days_within_the_archives_expiration():
    lock = "deviceBackend.telemetry.archiveObjectLock"
    assert load_config({lock: None}).telemetry.archive_object_lock is None
    assert load_config({lock: "null"}).telemetry.archive_object_lock is None  # -c ...archiveObjectLock=null
    config = load_config({lock: '{"mode": "COMPLIANCE", "days": 90}'})
    assert (config.telemetry.archive_object_lock.mode, config.telemetry.archive_object_lock.days) == ("COMPLIANCE", 90)
    allowed = '{"mode": "GOVERNANCE" or "COMPLIANCE", "days": a whole number from 1 to 3650}, or null'
    for value in ({"mode": "LEGAL_HOLD", "days": 1}, {"mode": "GOVERNANCE"}, {"mode": "GOVERNANCE", "days": 0},
                  {"mode": "GOVERNANCE", "days": True}, {"mode": "GOVERNANCE", "days": 1, "years": 1}, "GOVERNANCE"):  # fmt: skip
        with pytest.raises(ConfigError) as error:
            load_config({lock: value})
        assert str(error.value) == f"Context key {lock!r} is {value!r}; it must be {allowed}"
    with pytest.raises(ConfigError, match="locks objects for 400 days, longer than 'deviceBackend.telemetry.archiveDays' \\(365\\)"):
        load_config({lock: {"mode": "GOVERNANCE", "days": 400}})


def test_an_unknown_key_is_an_error_listing_the_known_keys():
    with pytest.raises(ConfigError, match="Unknown context key 'deviceBackend.presence.delay'; the keys are: "):
        load_config({"deviceBackend.presence.delay": 5})


def test_other_context_keys_are_not_ours_to_check():
    assert load_config({"@aws-cdk/core:newStyleStackSynthesis": True, "cli-telemetry": False}) == BackendConfig()


CA_PEM = "events/activate_certificate/public-certificates/ca.pem"
CAS = "deviceBackend.onboarding.certificateAuthorities"


def test_certificate_authorities_are_read_with_their_pem_and_mode():
    config = load_config({CAS: [{"name": "Factory", "certificate": CA_PEM, "verificationCertificate": None, "mode": "JITP"}]})
    [authority] = config.onboarding.certificate_authorities
    assert (authority.name, authority.mode, authority.verification_certificate) == ("Factory", "JITP", None)
    assert authority.certificate.startswith("-----BEGIN CERTIFICATE-----")
    as_string = load_config({CAS: json.dumps([{"name": "Factory", "certificate": CA_PEM, "mode": "JITR"}])})
    assert as_string.onboarding.certificate_authorities[0].mode == "JITR"


@pytest.mark.parametrize(
    "authorities",
    [
        [{"name": "Factory", "certificate": CA_PEM, "mode": "MAGIC"}],
        [{"name": "Factory", "certificate": "no/such/file.pem", "mode": "JITR"}],
        [{"name": "Factory", "certificate": "README.md", "mode": "JITR"}],
        [{"name": "bad name", "certificate": CA_PEM, "mode": "JITR"}],
        [{"name": "A", "certificate": CA_PEM, "mode": "JITR"}, {"name": "A", "certificate": CA_PEM, "mode": "JITP"}],
        [{"name": "Factory", "certificate": CA_PEM, "mode": "JITR", "extra": 1}],
        {"name": "Factory"},
    ],
)
def test_a_bad_certificate_authority_fails_naming_the_key(authorities):
    with pytest.raises(ConfigError, match=f"Context key '{CAS}' .* it must be a list of"):
        load_config({CAS: authorities})


def test_an_enabled_authorizer_needs_its_verification_keys_and_signing_keys_unless_signing_is_off(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}]}')
    with pytest.raises(ConfigError, match="authorizer.jwtKeys' must name the JWKS file"):
        load_config({"deviceBackend.authorizer.enabled": True})
    with pytest.raises(ConfigError, match="tokenSigningPublicKeys' must name at least one public key"):
        load_config({"deviceBackend.authorizer.enabled": True, "deviceBackend.authorizer.jwtKeys": str(jwks)})
    config = load_config(
        {
            "deviceBackend.authorizer.enabled": True,
            "deviceBackend.authorizer.jwtKeys": str(jwks),
            "deviceBackend.authorizer.tokenSigningDisabled": True,
        }
    )
    assert config.authorizer.enabled and config.authorizer.jwt_keys == jwks.read_text()


@pytest.mark.parametrize(
    "topics",
    [
        {"publish": ["dt/{clientId}/#"], "subscribe": ["cmd/{clientId}"], "receive": ["cmd/{clientId}"]},
        {"publish": ["dt/all"], "subscribe": ["cmd/{clientId}"], "receive": ["cmd/{clientId}"]},
        {"publish": ["dt/{clientId}"]},
    ],
)
def test_authorizer_topics_are_templates_of_the_client_id_without_mqtt_wildcards(topics):
    with pytest.raises(ConfigError, match="authorizer.topics"):
        load_config({"deviceBackend.authorizer.topics": topics})
