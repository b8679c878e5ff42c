# The digits student alone (the baseline of gdkd_r18w32_r18w16_digits.py).
_base_ = ['./_base_/digits.py']
