# The demo student alone: FCN on three stages of a narrow ResNetV1c-18, the demo schedule (the baseline every
# distilled method is measured against).
_base_ = ['./_base_/fcn_student.py', './_base_/digit_scenes.py', './_base_/runtime.py']

demo_method = dict(key='student', label='student alone', order=0, default=True)
