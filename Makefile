# `make demo` and `make test` set up .venv first when it is missing or out of date.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: env demo demo-quick crops-backbones test test-fast lint format clean-env

env: $(STAMP)

$(STAMP): constraints.txt requirements.txt setup.py tools/setup_env.sh tools/build_mmcv_wheel.sh
	bash tools/setup_env.sh
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

demo-quick: $(STAMP)
	$(PY) tools/demo.py --quick

# docs/pretraining.md: the digit-crops teacher, the student trained plainly and with GDKD (seed 0), and their
# backbones exported for configs/demo/student_crops_*.py (about 20 minutes on 2 cores). Then
# `python tools/demo.py --full --methods student-crops student-crops-GDKD` compares them on the benchmark.
CROPS := work_dirs/crops
CROPS_CONFIGS := configs/classification

crops-backbones: work_dirs/backbones/digit_crops_r18w4s3_plain.pth work_dirs/backbones/digit_crops_r18w4s3_gdkd.pth

$(CROPS)/teacher/epoch_30.pth: | $(STAMP)
	$(PY) tools/train.py $(CROPS_CONFIGS)/resnet18w32_v1c_digit_crops.py --work-dir $(CROPS)/teacher

$(CROPS)/plain/epoch_30.pth: | $(STAMP)
	$(PY) tools/train.py $(CROPS_CONFIGS)/resnet18w4s3_v1c_digit_crops.py --work-dir $(CROPS)/plain

$(CROPS)/gdkd/epoch_30.pth: $(CROPS)/teacher/epoch_30.pth
	$(PY) tools/train.py $(CROPS_CONFIGS)/gdkd_r18w32_r18w4s3_digit_crops.py --work-dir $(CROPS)/gdkd \
		--cfg-options model.teacher_checkpoint=$<

work_dirs/backbones/digit_crops_r18w4s3_%.pth: $(CROPS)/%/epoch_30.pth
	$(PY) tools/export_backbone.py $< $@ --check-config configs/demo/student_fcn_r18w4_digits.py

test: $(STAMP)
	$(PY) -m pytest tests --durations=15

# Ruff: lint and format check (CI runs it before the tests); `make format` rewrites the files.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Everything but the end-to-end runs marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

clean-env:
	rm -rf $(VENV)
