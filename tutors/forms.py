from django import forms

from avatars.pipeline.video import ACCEPTED_FORMATS
from tutors.models import Tutor


class AvatarVideoForm(forms.Form):
    video = forms.FileField(
        required=False, label="Avatar video",
        help_text=f"A short clip (a few seconds to a few minutes) of the tutor facing the camera: {ACCEPTED_FORMATS}.",
        widget=forms.ClearableFileInput(attrs={"accept": "video/*"}),
    )
    apply_blur = forms.BooleanField(required=False, label="Blur background")


class TutorForm(forms.ModelForm):
    """New tutor, with an optional avatar video (the seed's admin flow)."""

    video = AvatarVideoForm.base_fields["video"]
    apply_blur = AvatarVideoForm.base_fields["apply_blur"]

    class Meta:
        model = Tutor
        fields = ["name", "description"]


class TutorEditForm(forms.ModelForm):
    """Name and description; a new video goes through the tutor page's upload form."""

    class Meta:
        model = Tutor
        fields = ["name", "description"]
