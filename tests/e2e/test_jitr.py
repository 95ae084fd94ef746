"""JITR end to end on the synthesized app: IoT Core's certificate-registered events, as published on
$aws/events/certificates/registered/<caCertificateId>, through the rule, the activation queue and
activate_certificate, against the embedded AWS holding the samples' CA, certificates and CRL."""

from __future__ import annotations

import json
from pathlib import Path

from events import sqs_bodies
from local_runtime import LocalRuntime
from local_runtime.trust_material import trust_bucket
from tests import jitr_samples
from tests.e2e.assemblies import assert_nothing_left_running

TOPIC = "$aws/events/certificates/registered/{}"


def test_registered_certificates_are_activated_or_revoked_from_the_raw_event(cloud_assembly: Path) -> None:
    with LocalRuntime(cloud_assembly, drain_timeout_s=60) as runtime:
        cloud = runtime.cloud
        iot = cloud.client("iot")
        ids = jitr_samples.install(iot, cloud.client("s3"), trust_bucket(runtime))
        for case in ("new", "revoked", "expired", "new"):  # the new device's event comes twice
            [event] = sqs_bodies(f"activate_certificate/{case}")
            [fired] = runtime.publish(TOPIC.format(event["caCertificateId"]), json.dumps(event).encode())
            assert fired.rule == "iot_backend_onboarding_certificates_registered" and fired.actions[0].error is None
        runtime.drain()
        statuses = {case: jitr_samples.status(iot, ids[case]) for case in ("new", "revoked", "expired")}
        things = [thing["thingName"] for thing in iot.list_things()["things"]]
        arn = iot.describe_certificate(certificateId=ids["new"])["certificateDescription"]["certificateArn"]
        policies = [policy["policyName"] for policy in iot.list_attached_policies(target=arn)["policies"]]
        members = iot.list_things_in_thing_group(thingGroupName=jitr_samples.GROUP)["things"]
        pids, port = runtime.functions.worker_pids, cloud.port
    assert statuses == {"new": "ACTIVE", "revoked": "REVOKED", "expired": "REVOKED"}
    assert things == ["greenhouse-sensor-0001"] and members == things
    assert policies == [jitr_samples.POLICY]  # the app's own shared policy, created by the runtime from the template
    assert_nothing_left_running(pids, port)
