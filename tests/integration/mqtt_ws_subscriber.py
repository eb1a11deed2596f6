#!/usr/bin/python3
"""An MQTT 5 subscriber over WebSockets (paho-mqtt), the way a browser client (mqtt.js) talks to
the node's broker. Used by the channel integration tests.

usage: mqtt_ws_subscriber.py HOST PORT TOPIC COUNT TIMEOUT_SECONDS

Prints "subscribed" once the broker granted the subscription, then one JSON object per message
({topic, payload, content_type, correlation_data, user_properties}) and exits 0 after COUNT
messages; exits 2 when they did not all arrive within TIMEOUT_SECONDS, 3 if the connection or
the subscription was refused.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes


def main():
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count, timeout = int(sys.argv[4]), float(sys.argv[5])
    received = []
    done = threading.Event()
    failed = []

    def on_connect(client, userdata, flags, reason, properties):
        if reason.value != 0:
            failed.append("connect refused: " + str(reason))
            done.set()
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reasons, properties):
        if any(r.value >= 0x80 for r in reasons):
            failed.append("subscription refused: " + str(reasons))
            done.set()
            return
        print("subscribed", flush=True)

    def on_message(client, userdata, message):
        props = message.properties
        user = getattr(props, "UserProperty", []) if props else []
        correlation = getattr(props, "CorrelationData", b"") if props else b""
        print(json.dumps({
            "topic": message.topic,
            "payload": message.payload.decode("utf-8", "replace"),
            "content_type": getattr(props, "ContentType", "") if props else "",
            "correlation_data": correlation.decode("utf-8", "replace"),
            "user_properties": dict(user),
        }), flush=True)
        received.append(message)
        if len(received) >= count:
            done.set()

    client = mqtt.Client(client_id="", protocol=mqtt.MQTTv5, transport="websockets")
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30, clean_start=True)
    except OSError as error:
        print("cannot connect: %s" % error, file=sys.stderr)
        return 3
    client.loop_start()
    finished = done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    if failed:
        print(failed[0], file=sys.stderr)
        return 3
    if not finished:
        print("%d of %d messages in %g s" % (len(received), count, timeout), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
