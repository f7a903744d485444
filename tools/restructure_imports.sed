# Rewrites imports of modules moved by the restructure (issue 11) to their new homes.
# Apply to a branch made before it:  git ls-files '*.py' | xargs sed -i -E -f tools/restructure_imports.sed
# Longest names first; each line matches `from X import`, `import X`, and dotted uses like `X.attr` in strings.
s/\bstreams\.cli\b/cli/g
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
s/^( *)from sinks import rows as table_rows$/\1from formats import records as table_rows/
