import { mount } from 'svelte';
import '../theme.css';
import Page from './Room.svelte';

mount(Page, { target: document.getElementById('app')! });
