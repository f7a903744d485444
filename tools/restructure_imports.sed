# Rewrites imports of modules moved by the restructure (issue 11) to their new homes.
# Apply to a branch made before it:  git ls-files '*.py' | xargs sed -i -E -f tools/restructure_imports.sed
# Longest names first; each line matches `from X import`, `import X`, and dotted uses like `X.attr` in strings.
s/\bstreams\.cli\b/cli/g
s/\bstreams\.hotspotfeed\b/core.feeds/g
s/\bstreams\.settings\b/core.settings/g
s/\bstreams\.kafka\b/core.kafka/g
s/\bstreams\.datadir\b/core.datadir/g
s/\bstreams\.broker\b/core.broker/g
s/\bstreams\.crimefiles\b/formats.crimes/g
s/\bstreams\.hotspotmap\b/formats.preview_map/g
s/\bstreams\.replayfiles\b/formats.replayfiles/g
s/\bstreams\.simfiles\b/simulation.files/g
s/\bstreams\.livesim\b/simulation.live/g
s/\bstreams\.gatewaysim\b/simulation.via_gateway/g
s/\bprocessors\.simulation\b/simulation.simulate/g
s/\bprocessors\.evaluation\b/simulation.scoring/g
s/\bsinks\.rows\b/formats.records/g
s/\bstreams\.rows\b/formats.records/g
s/\bfrom streams import rows\b/from formats import records as rows/g
s/^( *)from sinks import rows as table_rows$/\1from formats import records as table_rows/M
# Names that moved between modules (not just module renames). A name imported alone moves with its line;
# a name among others is split onto a line of its own (GNU sed: \n in the replacement).
s/^( *)from formats\.replayfiles import (.*)\bload_hotspots, (.*)$/\1from formats.hotspots import load_index as load_hotspots\n\1from formats.replayfiles import \2\3/M
s/^( *)from formats\.replayfiles import (.+), load_hotspots$/\1from formats.hotspots import load_index as load_hotspots\n\1from formats.replayfiles import \2/M
s/^( *)from formats\.replayfiles import load_hotspots$/\1from formats.hotspots import load_index as load_hotspots/M
s/^( *)from formats\.replayfiles import (.*)\breplay, (.*)$/\1from replay.batch import replay\n\1from formats.replayfiles import \2\3/M
s/^( *)from formats\.replayfiles import (.+), replay$/\1from replay.batch import replay\n\1from formats.replayfiles import \2/M
s/^( *)from formats\.replayfiles import replay$/\1from replay.batch import replay/M
s/^( *)from streams\.hotspotfeed import (.+), records_from_geojson$/\1from formats.hotspots import records_from_geojson\n\1from core.feeds import \2/M
s/^( *)from streams\.hotspotfeed import records_from_geojson$/\1from formats.hotspots import records_from_geojson/M
s/^( *)from processors\.geofence import (.+), hotspots_from_geojson$/\1from formats.hotspots import hotspots_from_geojson\n\1from processors.geofence import \2/M
s/^( *)from processors\.geofence import hotspots_from_geojson$/\1from formats.hotspots import hotspots_from_geojson/M
s/^( *)from schemas\.codec import (.+), codec_for$/\1from core.codecs import codec_for\n\1from schemas.codec import \2/M
s/^( *)from schemas\.codec import codec_for$/\1from core.codecs import codec_for/M
s/^( *)from schemas\.codec import HttpSchemaRegistry$/\1from core.codecs import HttpSchemaRegistry/M
s/^( *)from cli\.pings import ((send_files|count_stale|BACKFILL_EXTRA)(, (send_files|count_stale|BACKFILL_EXTRA))*)$/\1from replay.send import \2/M
s/^( *)from simulation\.files import ((parse_ts_ms|iso_utc)(, (parse_ts_ms|iso_utc))*)$/\1from formats.timestamps import \2/M
# Left for a person (docs/restructure-map.md, "By hand"): gateway.config.GatewayConfig has no textual replacement.
# File paths in prose, comments and docs (same moves):
s#\bstreams/cli/#cli/#g
s#\bstreams/hotspotfeed\.py#core/feeds.py#g
s#\bstreams/settings\.py#core/settings.py#g
s#\bstreams/kafka\.py#core/kafka.py#g
s#\bstreams/datadir\.py#core/datadir.py#g
s#\bstreams/broker\.py#core/broker.py#g
s#\bstreams/crimefiles\.py#formats/crimes.py#g
s#\bstreams/hotspotmap\.py#formats/preview_map.py#g
s#\bstreams/replayfiles\.py#formats/replayfiles.py#g
s#\bstreams/simfiles\.py#simulation/files.py#g
s#\bstreams/livesim\.py#simulation/live.py#g
s#\bstreams/gatewaysim\.py#simulation/via_gateway.py#g
s#\bprocessors/simulation\.py#simulation/simulate.py#g
s#\bprocessors/evaluation\.py#simulation/scoring.py#g
s#\bsinks/rows\.py#formats/records.py#g
s#\bstreams/rows\.py#formats/records.py#g
s#\bgateway/config\.py#core/settings.py#g
