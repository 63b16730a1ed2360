# ---- GreenGrader: send this run to the carbon-aware shadow re-grader -------------------
# Appended to run_autograder, after Gradescope's own grading. It never changes the
# student's result and never fails the run: every error is swallowed, and it is bounded
# in time. QoS 1 (-q 1) is required: with QoS 0 a message sent while the bridge is down
# is lost.
(
  set +e
  GG_HOST="${GG_HOST:-mqtt.example.edu}"
  GG_PORT="${GG_PORT:-8883}"
  GG_RECEIPTS="${GG_RECEIPTS:-receipts}"   # the bridge's GREENGRADER_MQTT_RECEIPT_TOPIC
  GG_TOPIC="${GG_TOPIC:-submissions/COURSE}"
  # A mosquitto client options file (-u USER / -P PASSWORD / --cafile ...), owned by root
  # with mode 600 so student code running as another user cannot read it. It is read via
  # XDG_CONFIG_HOME, so the password never appears on a command line.
  GG_CREDENTIALS="${GG_CREDENTIALS:-/autograder/source/greengrader/credentials}"
  GG_WAIT="${GG_WAIT:-10}"            # seconds to wait for the receipt; 0: do not wait
  GG_MAX_BYTES="${GG_MAX_BYTES:-67108864}"   # must match the bridge's GREENGRADER_MAX_PAYLOAD_BYTES

  work="$(mktemp -d)" || exit 0
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/gradescope_data" "$work/config"
  hostname -I > "$work/gradescope_data/hostname.txt" 2>/dev/null
  cp -r /gradescope "$work/gradescope_data/gradescope" 2>/dev/null || mkdir -p "$work/gradescope_data/gradescope"
  cp -r /autograder "$work/gradescope_data/autograder" 2>/dev/null
  # Never ship the credentials, nor links a submission could point at them (or elsewhere).
  rm -rf "$work/gradescope_data/autograder/source/greengrader"
  find "$work/gradescope_data" -type l -delete
  (cd "$work" && zip -qr gradescope_data.zip gradescope_data) || exit 0
  size="$(wc -c < "$work/gradescope_data.zip")"
  if [ "$size" -gt "$GG_MAX_BYTES" ]; then
    echo "greengrader: payload of $size bytes over the cap; not sent" >&2; exit 0
  fi
  if [ -r "$GG_CREDENTIALS" ]; then
    cp "$GG_CREDENTIALS" "$work/config/mosquitto_pub"
    cp "$GG_CREDENTIALS" "$work/config/mosquitto_sub"
  fi
  export XDG_CONFIG_HOME="$work/config"

  waiter=""
  if [ "$GG_WAIT" -gt 0 ] 2>/dev/null; then
    sid="$(python3 -c 'import json;print(json.load(open("/autograder/submission_metadata.json"))["id"])' 2>/dev/null)"
    case "$GG_TOPIC" in */*) course="${GG_TOPIC#*/}" ;; *) course=default ;; esac
    if [ -n "$sid" ]; then
      timeout "$((GG_WAIT + 5))" mosquitto_sub -h "$GG_HOST" -p "$GG_PORT" -q 1 -C 1 -W "$GG_WAIT" \
        -t "$GG_RECEIPTS/$course/$sid" > "$work/receipt" 2>/dev/null &
      waiter=$!
      sleep 0.5
    fi
  fi
  timeout 60 mosquitto_pub -h "$GG_HOST" -p "$GG_PORT" -q 1 -t "$GG_TOPIC" \
    -f "$work/gradescope_data.zip" || echo "greengrader: publish failed (ignored)" >&2
  if [ -n "$waiter" ]; then
    wait "$waiter"
    if [ -s "$work/receipt" ]; then
      echo "greengrader: receipt $(cat "$work/receipt")" >&2
    else
      echo "greengrader: no receipt within ${GG_WAIT}s (the submission may still arrive; see greengrader submissions)" >&2
    fi
  fi
) || true
# ---- end GreenGrader --------------------------------------------------------------------
