"""The registered names alone, without torch: the command line's help and checks read them in a blink.

``models.registry`` holds what each name builds; a test keeps the two lists equal.
"""

MODEL_NAMES = ("fcn16s", "fcn16s_deconv", "fcn32s", "fcn8s", "fcn8s_mobilenet_v3", "fcn_resnet101", "fcn_resnet50")
WEIGHTS_NAMES = ("fcn8s_mobilenet_v3_scenes", "fcn_resnet101_coco", "fcn_resnet50_coco")
